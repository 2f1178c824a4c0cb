"""Faces: detection, shot-aware tracking and crops."""
