"""tokengov bench."""
