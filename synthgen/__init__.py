"""synthgen: synthetic training data for text-embedding models (the E5-mistral recipe)."""

__version__ = "0.1.0"
