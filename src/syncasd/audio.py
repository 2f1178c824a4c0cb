"""Audio features on the 16 kHz mono int16 signal."""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import python_speech_features
import torch

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


# Silero VAD scores 512-sample windows (32 ms at 16 kHz).
VAD_WINDOW = 512
SAMPLES_PER_FRAME = 640  # 16 kHz / 25 fps


@lru_cache(maxsize=1)
def _silero():
    # The bundled ONNX model, so no download and no torchaudio. Importing silero_vad sets
    # torch's thread count to 1 for the whole process: put it back.
    threads = torch.get_num_threads()
    from silero_vad import load_silero_vad

    with warnings.catch_warnings():  # its resource lookup uses a deprecated importlib API
        warnings.simplefilter("ignore", DeprecationWarning)
        model = load_silero_vad(onnx=True)
    torch.set_num_threads(threads)
    return model


def _vad_window_probs(audio: np.ndarray) -> np.ndarray:
    if audio.size < VAD_WINDOW:
        return np.zeros(0, np.float32)
    x = torch.from_numpy(audio.astype(np.float32) / 32768.0)
    return _silero().audio_forward(x, 16000)[0].numpy()


def speech_probability(audio: np.ndarray) -> np.ndarray:
    """Silero VAD speech probability per 25 fps frame: (ceil(samples / 640),) float32.

    Frame t covers samples [640t, 640(t+1)); it gets the window probabilities interpolated at
    its centre (windows are 512 samples, so frames and windows do not line up).
    """
    n = -(-audio.size // SAMPLES_PER_FRAME)
    probs = _vad_window_probs(audio)
    if probs.size == 0:
        return np.zeros(n, np.float32)
    centres = np.arange(probs.size) * VAD_WINDOW + VAD_WINDOW / 2
    frames = np.arange(n) * SAMPLES_PER_FRAME + SAMPLES_PER_FRAME / 2
    return np.interp(frames, centres, probs).astype(np.float32)


def speech_frames(audio: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Which 25 fps frames hold speech: (ceil(samples / 640),) bool.

    Silero's own segmentation (hysteresis, speech ≥ 250 ms, pauses ≥ 100 ms, 30 ms padding);
    a frame is speech when its centre sample lies in a segment.
    """
    from silero_vad import get_speech_timestamps_from_probs

    n = -(-audio.size // SAMPLES_PER_FRAME)
    speech = np.zeros(n, bool)
    probs = _vad_window_probs(audio)
    if probs.size == 0:
        return speech
    segments = get_speech_timestamps_from_probs(
        probs.tolist(), threshold=threshold, audio_length_samples=audio.size
    )
    centres = np.arange(n) * SAMPLES_PER_FRAME + SAMPLES_PER_FRAME // 2
    for seg in segments:
        speech[(centres >= seg["start"]) & (centres < seg["end"])] = True
    return speech
