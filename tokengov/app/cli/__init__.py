"""The tokengov command line."""
