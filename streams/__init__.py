"""tokengov streams."""
