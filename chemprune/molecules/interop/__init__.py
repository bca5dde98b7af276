"""Interoperability with other SchNet implementations (imported lazily)."""
