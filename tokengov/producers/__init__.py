"""tokengov producers."""
