"""Finding narrated or dubbed videos by their true-positive rate (Sync-TalkNet §5.1, Table 3).

Per video, TPR = frames labelled speaking and predicted speaking / frames labelled speaking.
In a dubbed film the annotators still label the visible speakers as speaking, but the voice is
not theirs: a synchronization-aware model calls few of those frames speaking, so the lowest
TPRs point at dubbed or narrated videos. Videos without a labelled speaking frame have no TPR
and are left out.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .ava_map import join
from .report import Report


@dataclass
class VideoTPR:
    video: str
    tpr: float  # percent
    positives: int  # frames labelled speaking
    frames: int


def video_tprs(videos: Sequence[str], labels: np.ndarray, predicted: np.ndarray) -> list[VideoTPR]:
    """Per-video TPR from per-frame video ids, labels and decisions, lowest TPR first."""
    videos = np.asarray(videos)
    out = []
    for video in dict.fromkeys(videos.tolist()):
        mask = videos == video
        positives = int(labels[mask].sum())
        if positives:
            tp = int((labels[mask] & predicted[mask]).sum())
            out.append(VideoTPR(video, 100.0 * tp / positives, positives, int(mask.sum())))
    return sorted(out, key=lambda v: (v.tpr, v.video))


def tprs_from_csv(
    groundtruth: str | Path, predictions: str | Path, threshold: float = 0.5
) -> list[VideoTPR]:
    """Per-video TPR of a predictions CSV (score ≥ threshold is speaking) against AVA labels."""
    keys, labels, scores = join(groundtruth, predictions)
    return video_tprs([k[0] for k in keys], labels, scores >= threshold)


def separation(ranked: Sequence[VideoTPR], dubbed: Collection[str]) -> dict[str, float]:
    """How well low TPR finds known dubbed videos: share of them among the lowest k (k = their
    number) and the AUROC of −TPR (1.0: every dubbed video below every other)."""
    k = sum(v.video in dubbed for v in ranked)
    if k == 0 or k == len(ranked):
        raise ValueError("need both dubbed and original videos among the ranked ones")
    at_k = 100.0 * sum(v.video in dubbed for v in ranked[:k]) / k
    dub = np.array([v.tpr for v in ranked if v.video in dubbed])
    orig = np.array([v.tpr for v in ranked if v.video not in dubbed])
    auc = float(np.mean((dub[:, None] < orig[None, :]) + 0.5 * (dub[:, None] == orig[None, :])))
    return {"precision_at_k": at_k, "auroc": 100.0 * auc}


def report(
    ranked: Sequence[VideoTPR], model: str = "", dubbed: Collection[str] = (), shown: int = 3
) -> Report:
    """Table 3 of the seed (lowest and highest TPRs), the full ranking and a bar chart."""
    r = Report(f"Dubbed / narrated video detection{f': {model}' if model else ''}")
    r.text(
        f"{len(ranked)} videos with labelled speech, ranked by true-positive rate (frames "
        "labelled and predicted speaking / frames labelled speaking). Lowest first: the likeliest "
        "dubbed or narrated."
    )
    r.table(
        ["", *[v.video for v in ranked[:shown]]], [["TPR (%)", *[v.tpr for v in ranked[:shown]]]]
    )
    top = list(ranked[-shown:]) if len(ranked) > shown else []
    if top:
        r.table(["", *[v.video for v in top]], [["TPR (%)", *[v.tpr for v in top]]])
    if dubbed:
        s = separation(ranked, dubbed)
        r.text(
            f"Known dubbed videos among the lowest {sum(v.video in dubbed for v in ranked)}: "
            f"{s['precision_at_k']:.1f} %; AUROC of low TPR for dubbed: {s['auroc']:.1f} %."
        )
    rows = [[i + 1, v.video, v.tpr, v.positives, v.frames] for i, v in enumerate(ranked)]
    if dubbed:
        rows = [row + ["yes" if row[1] in dubbed else ""] for row in rows]
    headers = ["rank", "video", "TPR (%)", "speaking frames", "frames"]
    r.table(headers + (["dubbed"] if dubbed else []), rows)
    _, ax = r.figure("tpr", "True-positive rate per video, lowest first", size=(7.0, 4.0))
    colors = ["tab:red" if v.video in dubbed else "tab:blue" for v in ranked]
    ax.bar(range(len(ranked)), [v.tpr for v in ranked], color=colors)
    ax.set_xlabel("videos, by TPR" + (" (red: dubbed)" if dubbed else ""))
    ax.set_ylabel("TPR (%)")
    ax.set_ylim(0, 100)
    return r


def format_ranking(ranked: Sequence[VideoTPR]) -> list[str]:
    return [f"{v.video}\tTPR {v.tpr:.2f}%\t({v.positives} speaking frames)" for v in ranked]
