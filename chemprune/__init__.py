"""chemprune: small, fast chemistry models."""

__version__ = "0.1.0"
