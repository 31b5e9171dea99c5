"""The tiny offline InternVL3 used by the demo and the tests."""
from .model import build_tiny_model, default_tiny_model_dir, ensure_tiny_model

__all__ = ["build_tiny_model", "default_tiny_model_dir", "ensure_tiny_model"]
