"""Test-data utilities: composing multi-speaker scenes from single-speaker clips."""
