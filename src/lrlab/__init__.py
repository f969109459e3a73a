"""lrlab: a learning-rate lab for people who train neural networks."""

__version__ = "0.1.0"

__all__ = ["__version__"]
