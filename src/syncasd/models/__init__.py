"""ASD model architectures and the registry that builds them with their weights."""

from .zoo import (
    REGISTRY,
    ModelSpec,
    audio_lag_ms,
    available_models,
    download,
    get_spec,
    load_model,
)

__all__ = [
    "REGISTRY",
    "ModelSpec",
    "audio_lag_ms",
    "available_models",
    "download",
    "get_spec",
    "load_model",
]
