"""The seed's VAD × lip-movement product baseline (Sync-TalkNet §3.2).

Speaking probability = P(speech in the audio) × P(speaking, from the face alone). The seed
trained both from TalkNet's audio and visual front ends; here the audio side is Silero VAD and
the visual side the auxiliary visual head (`lossV`) of a Light-ASD-family checkpoint, which was
trained on the visual embeddings alone to predict speaking: a lip-movement model.

Neither half knows whether the voice belongs to the lips: the unsynchronization test shows it.
(A hand-made lip-motion measure, mouth against upper-face frame differences, separated VASP's
speech frames from its pauses no better than chance, 49.6 % balanced accuracy, so the learnt
head it is.)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..audio import speech_probability
from ..models.onnx import to_ort
from ..models.zoo import cache_dir
from ..scoring import score_track


class _FaceOnly(nn.Module):
    """A model's visual head behind the `frame_logits(video, mfcc)` API (the audio ignored)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model

    def frame_logits(self, video: torch.Tensor, mfcc: torch.Tensor) -> torch.Tensor:
        return self.inner.visual_logits(video)


class VadLipBaseline:
    """A `TrackScorer`: Silero VAD probability × the visual head's speaking probability."""

    def __init__(self, model: nn.Module, backend: str = "ort") -> None:
        if not hasattr(model, "visual_logits"):
            raise ValueError(f"{type(model).__name__} has no visual-only head for lip movement")
        self.model = model.eval()
        self.face_only = _FaceOnly(model)
        if backend == "ort":  # 2-4x faster than torch on the CPU, as for the whole models
            name = f"{type(model).__name__.lower()}-face-only"
            self.face_only = to_ort(self.face_only, name, cache_dir())

    def lip_probability(self, crops: np.ndarray) -> np.ndarray:
        """(T,) probability of speaking from the face alone."""
        audio = np.zeros(len(crops) * 640, np.int16)  # never read, sizes the MFCC windows
        return score_track(self.face_only, crops, audio)[1]

    def __call__(self, crops: np.ndarray, audio: np.ndarray) -> np.ndarray:
        vad = speech_probability(audio)[: len(crops)]
        vad = np.pad(vad, (0, len(crops) - len(vad)))
        return vad * self.lip_probability(crops)
