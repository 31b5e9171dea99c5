"""Host adapters: the only modules that import a training framework."""
