"""Benchmarks of dfc_transform against the alternatives: ``python -m benchmarks.run``."""
