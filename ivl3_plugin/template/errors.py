"""Errors the template raises; host adapters decide how loud they are (never silent)."""
from __future__ import annotations


class TemplateInputError(ValueError):
    """A sample the template cannot encode (missing frame, bad video entry, missing timestamps)."""


class BudgetError(TemplateInputError):
    """Even the smallest allowed version of a sample does not fit ``max_length``."""

    def __init__(self, message: str, sample_id: str = "?", needed: int = 0, max_length: int = 0):
        super().__init__(message)
        self.sample_id = sample_id
        self.needed = needed
        self.max_length = max_length
