"""Prompt templates: frame layout, Jinja instruction files and the token budget."""
