"""Video -> frames dataset converter (``ivl3 convert``)."""
from .api import convert

__all__ = ["convert"]
