"""tokengov sinks."""
