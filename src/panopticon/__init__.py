"""Panopticon: evaluate, compare and monitor LLMs and the applications built on them."""

__version__ = "0.1.0"

__all__ = ["__version__"]
