"""Scoring labelled face tracks, and the pooled mAP the track-level protocols report.

A `TrackScorer` maps one track's crops and audio to a speaking score per frame. ASD models
become one with `asd_scorer`; the VAD × lip-movement baseline is one by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..data.labelled import LabelledTrack
from ..scoring import score_track
from .ava_map import average_precision

TrackScorer = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (crops, audio) → (T,) scores


def asd_scorer(model) -> TrackScorer:
    """Speaking probability from an ASD model (torch or ONNX Runtime), as `detect` scores."""

    def score(crops: np.ndarray, audio: np.ndarray) -> np.ndarray:
        return score_track(model, crops, audio)[1]

    return score


def model_scorer(spec: str, backend: str = "auto") -> tuple[str, TrackScorer]:
    """`NAME` or `NAME=CHECKPOINT` (e.g. `light-asd.talkset=weights/x.model`) → (name, scorer).

    Runs on the CPU, through ONNX Runtime unless `backend` is "torch".
    """
    from ..models import load_model
    from ..models.onnx import to_ort
    from ..models.zoo import cache_dir

    name, _, weights = spec.partition("=")
    model = load_model(name, weights=weights or None)
    if backend != "torch":
        model = to_ort(model, name, cache_dir())
    return name, asd_scorer(model)


def score_tracks(scorer: TrackScorer, tracks: Sequence[LabelledTrack]) -> list[np.ndarray]:
    return [np.asarray(scorer(t.crops, t.audio), np.float64) for t in tracks]


def pooled_map(labels: Sequence[np.ndarray], scores: Sequence[np.ndarray]) -> float:
    """AVA-style mAP (%): one average precision over every face-frame of every track.

    NaN when no frame is labelled speaking (precision is undefined without positives).
    """
    flat = np.concatenate(labels)
    if not flat.any():
        return float("nan")
    return 100.0 * average_precision(flat, np.concatenate(scores))
