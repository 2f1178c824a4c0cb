"""Evaluation protocols: reproduce published numbers and measure your own models the same way."""
