"""syncasd: synchronization-aware active speaker detection and audio-visual sync analysis."""

__version__ = "0.1.0"

from .errors import MediaError, SyncASDError, WeightsError  # noqa: E402
from .pipeline import DetectOptions, Detector, detect  # noqa: E402
from .results import Result, Track, Turn  # noqa: E402
from .syncrun import SyncAnalyzer, sync  # noqa: E402

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
