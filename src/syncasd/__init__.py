"""syncasd: synchronization-aware active speaker detection and audio-visual sync analysis."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from .errors import MediaError, SyncASDError, WeightsError  # noqa: E402

# The pipeline (PyAV, scene detection, ONNX Runtime) loads on first use of its names, so that
# `syncasd.models` or `syncasd.data` import on a machine that only trains (a GPU box with
# torch and OpenCV).
_LAZY = {
    "DetectOptions": "pipeline",
    "Detector": "pipeline",
    "detect": "pipeline",
    "Result": "results",
    "Track": "results",
    "Turn": "results",
    "SyncAnalyzer": "syncrun",
    "sync": "syncrun",
}

if TYPE_CHECKING:
    from .pipeline import DetectOptions, Detector, detect
    from .results import Result, Track, Turn
    from .syncrun import SyncAnalyzer, sync


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DetectOptions",
    "Detector",
    "MediaError",
    "Result",
    "SyncASDError",
    "SyncAnalyzer",
    "Track",
    "Turn",
    "WeightsError",
    "__version__",
    "detect",
    "sync",
]
