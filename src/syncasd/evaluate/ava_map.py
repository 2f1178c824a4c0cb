"""The AVA-ActiveSpeaker "mAP": one VOC-style average precision over all face-frames.

Equal to the official `get_ava_active_speaker_performance.py`: ground truth and predictions are
joined on (video_id, frame_timestamp, entity_id); only SPEAKING_AUDIBLE is positive
(SPEAKING_NOT_AUDIBLE counts as negative); rows are ranked by score; precision is made
non-increasing from the right and summed over the recall steps.

Predictions from our `detect` lie on the 25 fps model timeline; ground truth at other
timestamps joins the nearest prediction of the same entity within half a model frame.

Ties: the official script sorts with an unstable sort, so with tied scores its result depends on
the row order numpy happens to produce. We rank ties in ground-truth row order (a stable sort),
which lies between "negatives first" and "positives first", the two extremes any tie order can
give.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..errors import InputError

POSITIVE = "SPEAKING_AUDIBLE"
# Half a model frame (25 fps) and a millisecond of rounding: the nearest 25 fps row always
# joins, a row of another frame never does.
JOIN_TOLERANCE_S = 0.021


def _read(path: str | Path, with_score: bool) -> dict[tuple[str, str, str], tuple[str, float]]:
    rows: dict[tuple[str, str, str], tuple[str, float]] = {}
    try:
        with open(path, newline="") as f:
            for n, row in enumerate(csv.reader(f)):
                if not row or (n == 0 and row[0] == "video_id"):
                    continue
                if len(row) < (9 if with_score else 8):
                    raise InputError(f"{path}:{n + 1}: not the AVA-ActiveSpeaker CSV layout")
                key = (row[0], f"{float(row[1]):.3f}", row[7])
                rows[key] = (row[6], float(row[8]) if with_score else 0.0)
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    except ValueError as e:
        raise InputError(f"{path}: not the AVA-ActiveSpeaker CSV layout ({e})") from None
    return rows


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """VOC average precision of boolean `labels` ranked by `scores` (ties in given order)."""
    order = np.argsort(-scores, kind="stable")
    hits = labels[order].astype(np.float64)
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, len(hits) + 1)
    recall = tp / max(hits.sum(), 1)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[steps] - mrec[steps - 1]) * mpre[steps]))


def join(
    groundtruth: str | Path, predictions: str | Path, tolerance: float = JOIN_TOLERANCE_S
) -> tuple[list[tuple[str, str, str]], np.ndarray, np.ndarray]:
    """Ground-truth face-frames with their predicted scores: (keys, labels, scores).

    A ground-truth row takes the prediction with its exact (video_id, timestamp, entity_id) key
    (the official rule); failing that, the same entity's prediction nearest in time if within
    `tolerance` seconds: our detect CSVs have rows on the 25 fps model timeline, ground truth at
    the source's frame times.
    """
    gt = _read(groundtruth, with_score=False)
    pred = _read(predictions, with_score=True)
    by_entity: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for (video, t, entity), (_, score) in pred.items():
        by_entity.setdefault((video, entity), []).append((float(t), score))
    times = {k: np.array(sorted(v)) for k, v in by_entity.items()}
    keys, labels, scores, missing = [], [], [], []
    for key, (label, _) in gt.items():
        if key in pred:
            score = pred[key][1]
        else:
            video, t, entity = key
            rows = times.get((video, entity))
            if rows is None:
                missing.append(key)
                continue
            i = int(np.argmin(np.abs(rows[:, 0] - float(t))))
            if abs(rows[i, 0] - float(t)) > tolerance:
                missing.append(key)
                continue
            score = rows[i, 1]
        keys.append(key)
        labels.append(label == POSITIVE)
        scores.append(score)
    if missing:
        video, t, entity = missing[0]
        raise InputError(
            f"{predictions}: no prediction for {len(missing)} of {len(gt)} ground-truth "
            f"face-frames, e.g. {video} at {t} s, entity {entity}"
        )
    return keys, np.array(labels, bool), np.array(scores, np.float64)


def ava_map(groundtruth: str | Path, predictions: str | Path) -> float:
    """mAP in percent of a predictions CSV (AVA layout, with `score`) against ground truth."""
    _, labels, scores = join(groundtruth, predictions)
    return 100.0 * average_precision(labels, scores)
