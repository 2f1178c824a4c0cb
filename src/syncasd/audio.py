"""Audio features on the 16 kHz mono int16 signal."""

from __future__ import annotations

import numpy as np
import python_speech_features

# 100 MFCC rows per second: 4 rows per 25 fps video frame.
ROWS_PER_FRAME = 4


def mfcc(audio: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """13 MFCCs per 10 ms exactly as the TalkNet family computes them: (rows, 13) float64.

    python_speech_features defaults on unnormalised int16 samples (25 ms window, 26 filters,
    nfft 512, pre-emphasis 0.97, lifter 22, c0 replaced by log energy). One second of audio
    gives 99 rows, not 100: the last, partial window is not counted.
    """
    if audio.size < int(0.025 * sample_rate):
        return np.zeros((0, 13))
    return python_speech_features.mfcc(audio, sample_rate, numcep=13, winlen=0.025, winstep=0.010)


def is_silent(audio: np.ndarray, peak: int = 16) -> bool:
    """True if no sample rises above `peak` (−66 dBFS): digital silence, nothing to hear."""
    return audio.size == 0 or int(np.abs(audio.astype(np.int32)).max()) < peak
