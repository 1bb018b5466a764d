"""tokengov: real-time token governance for agentic AI."""

__version__ = "0.1.0"
__all__ = ["__version__"]
