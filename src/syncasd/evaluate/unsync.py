"""The unsynchronization test (Sync-TalkNet §3.1, Fig. 2).

From labelled face tracks, build mismatched and misaligned twins (`syncasd.data.unsync`), then
for each share of unsynchronized tracks (0, 25, 50, 75, 100 %) take that many tracks' twins and
the rest as they are, and compute the pooled mAP. Every set has the same number of tracks. The
tracks to swap are the first k of one seeded permutation, so the sets are nested, and a seed
fixes everything: the twins' audio and the choice.

A model that only hears a voice and sees moving lips keeps calling the unsynchronized tracks
speaking, and its mAP falls as the share grows; a synchronization-aware one stays up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..data.labelled import LabelledTrack
from ..data.unsync import MIN_SHIFT_FRAMES, misalign, mismatch
from .report import Report
from .tracks import TrackScorer, pooled_map, score_tracks

SHARES = (0, 25, 50, 75, 100)
KINDS = ("mismatch", "misalign")


@dataclass
class UnsyncResult:
    """mAP (%) per kind of unsynchronization, one value per share."""

    model: str
    shares: tuple[int, ...]
    maps: dict[str, list[float]] = field(default_factory=dict)


class UnsyncTest:
    """The twins and the seeded choice of tracks, built once; `run` scores one model."""

    def __init__(
        self, tracks: Sequence[LabelledTrack], shares: Sequence[int] = SHARES, seed: int = 0
    ) -> None:
        if not tracks:
            raise ValueError("the unsynchronization test needs labelled face tracks")
        rng = np.random.default_rng(seed)
        self.tracks = list(tracks)
        self.shares = tuple(shares)
        self.twins = {
            "mismatch": mismatch(self.tracks, rng),
            "misalign": misalign(self.tracks, rng),
        }
        self.order = rng.permutation(len(self.tracks))
        self.seed = seed

    def chosen(self, share: int) -> np.ndarray:
        """Indices of the tracks replaced by their twins at `share` percent."""
        return self.order[: int(round(share / 100 * len(self.tracks)))]

    def run(
        self, scorer: TrackScorer, name: str, original: list[np.ndarray] | None = None
    ) -> UnsyncResult:
        """mAP per kind and share; `original`: the scorer's scores of the tracks, if known."""
        if original is None:
            original = score_tracks(scorer, self.tracks)
        result = UnsyncResult(name, self.shares)
        for kind, twins in self.twins.items():
            twin_scores = score_tracks(scorer, twins)
            values = []
            for share in self.shares:
                swap = set(self.chosen(share).tolist())
                picked = range(len(twins))
                labels = [(twins if i in swap else self.tracks)[i].labels for i in picked]
                scores = [(twin_scores if i in swap else original)[i] for i in picked]
                values.append(pooled_map(labels, scores))
            result.maps[kind] = values
        return result

    def describe(self) -> str:
        n_frames = sum(len(t) for t in self.tracks)
        n_pos = sum(int(t.labels.sum()) for t in self.tracks)
        kept = sum(int(t.labels.sum()) for t in self.twins["misalign"])
        videos = len({t.video_id for t in self.tracks})
        return (
            f"{len(self.tracks)} face tracks from {videos} videos, {n_frames} frames, "
            f"{n_pos} labelled speaking. Seed {self.seed}. Mismatched twins: every speaking "
            "segment's audio replaced by a speaking segment of another video (label negative). "
            f"Misaligned twins: every speaking segment's audio circularly shifted by "
            f"{MIN_SHIFT_FRAMES} frames ({MIN_SHIFT_FRAMES * 40} ms) or more (label negative); "
            f"{kept} speaking frames in segments shorter than {2 * MIN_SHIFT_FRAMES} frames "
            "cannot be shifted that far and stay as they are."
        )


def report(test: UnsyncTest, results: Sequence[UnsyncResult]) -> Report:
    """Markdown table and the seed's Fig. 2: mAP against the unsynchronized share."""
    r = Report("Unsynchronization test")
    r.text(test.describe())
    headers = ["model", "kind"] + [f"{s} %" for s in test.shares]
    rows = [[res.model, kind, *res.maps[kind]] for res in results for kind in KINDS]
    r.table(headers, rows)
    for kind in KINDS:
        _, ax = r.figure(f"map_vs_share_{kind}", f"mAP against the share of {kind}ed tracks")
        for res in results:
            ax.plot(test.shares, res.maps[kind], marker="o", label=res.model)
        ax.set_xlabel(f"{kind}ed tracks (%)")
        ax.set_ylabel("mAP (%)")
        ax.set_xticks(list(test.shares))
        ax.grid(alpha=0.3)
        ax.legend()
    return r
