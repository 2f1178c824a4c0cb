"""Sync accuracy (IC-SyncNet §5.1, Table 1): is the audio-visual offset found, clip by clip?

A sync backend (`syncasd.offsets`) gives each face track a (2K+1, T) matrix: row k+K,
column t = how well the lips around frame t match the audio k frames later. The protocol:

1. cut the track into clips of L frames (L = 5, 7, …, 15), one starting every `stride` frames;
   a clip is scored only where every one of its L frames is valid (speaking), so that every
   backend is scored on the same clips whatever its window;
2. average the matrix columns of the windows that fit inside the clip: IC-SyncNet sees five
   images per column (`window=5`), so a clip of L frames holds the windows centred on frames
   s+2 … s+L-3 (one window for L = 5); a per-frame ASD matrix (`window=1`) has all L columns;
3. the clip's offset is the row with the largest average; it is correct when it lies within
   ±`tolerance` frames (1 in the paper) of the true offset, 0 on original footage;
4. clips are cut from frames K … T−K−1 of a track only (K = the backend's search range), so
   that every candidate offset reads the track's own audio, as in the paper, where the clips
   come from longer recordings. Zero padding past the track's ends would tell a backend with
   temporal context which offsets are wrong: on the test tracks longer than 35 frames
   sync-light-asd (stage 2) scored 46.0 % (5 frames) with the padding in its context, 41.5 %
   without.

The paper averages cosine similarities; our matrices hold sigmoid(similarity / τ) (IC-SyncNet)
or a speaking probability (ASD models), so by default the logits are averaged, which for
IC-SyncNet is exactly the paper's average up to the factor 1/τ (`average="prob"` averages the
probabilities instead). For L = window the two agree: a single column is compared.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from ..atomic import atomic_write
from ..errors import InputError, SyncASDError
from ..syncmap import clipped_logit
from .report import Report, markdown_table

CLIP_LENGTHS = (5, 7, 9, 11, 13, 15)  # the paper's Table 1
TOLERANCE = 1  # frames: "within ±1 frame" counts as in sync (the paper, after SyncNet)
TIE_ATOL = 1e-9

Average = Literal["logit", "prob"]


class TrackLike(Protocol):
    """What the protocol reads of a track (`LabelledTrack` has it)."""

    crops: np.ndarray  # (T, 112, 112) uint8, or (T, 224, 224, 3) for SyncNet
    audio: np.ndarray  # (640·T,) int16, starting at the track's first frame
    labels: np.ndarray  # (T,) bool: frames a clip may cover


def _check_window(window: int) -> None:
    if window < 1 or window % 2 == 0:
        raise InputError(f"the backend window must be a positive odd number, got {window}")


def clip_offsets(
    matrix: np.ndarray,
    valid: np.ndarray,
    clip_length: int,
    window: int = 5,
    stride: int = 1,
    average: Average = "logit",
) -> np.ndarray:
    """The offset (frames, row - K) found for every scored clip of one track, in clip order.

    Clips of `clip_length` frames start at 0, stride, 2·stride, …; a clip is scored when all of
    its frames are `valid`. Its score per row is the mean of the columns s+h … s+L-1-h
    (h = window // 2, the centres of the windows inside the clip); ties go to the first row,
    so a flat curve is never counted as "found 0".
    """
    m = np.asarray(matrix, dtype=np.float64)
    v = np.asarray(valid, dtype=bool)
    if m.ndim != 2 or m.shape[0] % 2 != 1:
        raise InputError(f"a sync matrix has shape (2K+1, T), got {m.shape}")
    if v.shape != (m.shape[1],):
        raise InputError(f"valid has shape {v.shape}, expected ({m.shape[1]},)")
    _check_window(window)
    if clip_length < window:
        raise InputError(f"clip length {clip_length} is shorter than the window ({window})")
    if stride < 1:
        raise InputError("the clip stride must be at least 1")
    if average == "logit":
        m = clipped_logit(m)
    elif average != "prob":
        raise InputError(f"average must be 'logit' or 'prob', got {average!r}")
    t, h = m.shape[1], window // 2
    starts = np.arange(0, t - clip_length + 1, stride)
    if len(starts) == 0:
        return np.zeros(0, np.int64)
    # A clip is valid when it holds no invalid frame: a difference of cumulative counts.
    bad = np.concatenate([[0], np.cumsum(~v)])
    starts = starts[bad[starts + clip_length] == bad[starts]]
    if len(starts) == 0:
        return np.zeros(0, np.int64)
    # Column sums over [s+h, s+L-h) for every start at once, from cumulative sums.
    cum = np.concatenate([np.zeros((m.shape[0], 1)), np.cumsum(m, axis=1)], axis=1)
    means = (cum[:, starts + clip_length - h] - cum[:, starts + h]) / (clip_length - 2 * h)
    # Equal rows can differ in the last bits (cumulative sums): treat those as ties.
    best = means >= means.max(axis=0) - TIE_ATOL
    return best.argmax(axis=0).astype(np.int64) - (m.shape[0] - 1) // 2


@dataclass
class SyncAccuracy:
    """Percent of clips whose offset is found, per clip length (the paper's Table 1 row)."""

    model: str
    accuracy: dict[int, float]  # clip length → % correct (NaN: no clip of that length)
    clips: dict[int, int]  # clip length → clips scored
    tracks: int  # tracks that gave at least one clip (of the shortest length)
    tolerance: int = TOLERANCE
    window: int = 1
    max_offset: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # what was evaluated (for the JSON)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "tolerance_frames": self.tolerance,
            "window": self.window,
            "max_offset": self.max_offset,
            "tracks": self.tracks,
            "accuracy": {
                str(n): None if math.isnan(a) else round(a, 2) for n, a in self.accuracy.items()
            },
            "clips": {str(n): c for n, c in self.clips.items()},
            **self.extra,
        }

    def table(self) -> str:
        """Markdown: one row of accuracies (%) under the clip lengths, one of clip counts."""
        lengths = list(self.accuracy)
        headers = ["clip length (frames)", *map(str, lengths)]
        rows = [
            [f"{self.model} accuracy (%)", *(self.accuracy[n] for n in lengths)],
            ["clips", *(self.clips[n] for n in lengths)],
        ]
        return markdown_table(headers, rows)


def _lengths(clip_lengths: Sequence[int], window: int) -> list[int]:
    """The clip lengths sorted, each checked against the window before any model runs."""
    _check_window(window)
    lengths = sorted(set(int(n) for n in clip_lengths))
    if not lengths:
        raise InputError("give at least one clip length")
    if lengths[0] < window:
        raise InputError(f"clip length {lengths[0]} is shorter than the window ({window})")
    return lengths


def sync_accuracy(
    matrices: Iterable[np.ndarray],
    valids: Iterable[np.ndarray],
    clip_lengths: Sequence[int] = CLIP_LENGTHS,
    tolerance: int = TOLERANCE,
    window: int = 5,
    stride: int = 1,
    average: Average = "logit",
    model: str = "",
    truths: Sequence[int] | None = None,
) -> SyncAccuracy:
    """Pooled over all tracks: the share (%) of clips with |offset| <= tolerance, per length.

    `truths`: each track's own offset (frames) to score its clips against instead of 0, for
    material whose soundtrack is known, or estimated, to be off."""
    lengths = _lengths(clip_lengths, window)
    correct = dict.fromkeys(lengths, 0)
    clips = dict.fromkeys(lengths, 0)
    tracks = scored = 0
    for scored, (matrix, valid) in enumerate(zip(matrices, valids, strict=True), 1):
        if truths is not None and scored > len(truths):
            raise InputError(f"{len(truths)} track offsets for more tracks")
        truth = 0 if truths is None else truths[scored - 1]
        found = {n: clip_offsets(matrix, valid, n, window, stride, average) for n in lengths}
        tracks += len(found[lengths[0]]) > 0
        for n in lengths:
            clips[n] += len(found[n])
            correct[n] += int((np.abs(found[n] - truth) <= tolerance).sum())
    if truths is not None and len(truths) != scored:
        raise InputError(f"{len(truths)} track offsets for {scored} tracks")
    accuracy = {n: 100.0 * correct[n] / clips[n] if clips[n] else math.nan for n in lengths}
    return SyncAccuracy(model, accuracy, clips, tracks, tolerance, window)


def backend_window(backend) -> int:
    """Images per matrix column (`column_images`): 5 for IC-SyncNet and SyncNet (a window
    centred on the frame), 1 for the per-frame models. (`ASDOffsets.window` is its 150-frame
    scoring window.) A clip of L frames averages its L − window + 1 columns."""
    return int(backend.column_images)


def evaluate_sync_accuracy(
    backend,
    tracks: Iterable[TrackLike],
    clip_lengths: Sequence[int] = CLIP_LENGTHS,
    tolerance: int = TOLERANCE,
    stride: int = 1,
    average: Average = "logit",
    model: str = "",
    progress: bool = False,
) -> SyncAccuracy:
    """Run `backend` (an `OffsetBackend`) over each track's crops and own audio and score it.

    A track's audio starts at its first frame; its labels say which frames a clip may cover.
    The backend sees frames K … T−K−1 (`first = K`), so that the audio at every offset it
    searches lies inside the track (item 4 above). Tracks without a clip there are skipped
    before the backend runs.
    """
    window = backend_window(backend)
    shortest = _lengths(clip_lengths, window)[0]
    scored = list(track_matrices(backend, tracks, shortest, progress))
    matrices = [matrix for _, matrix, _ in scored]
    valids = [valid for _, _, valid in scored]
    result = sync_accuracy(
        matrices, valids, clip_lengths, tolerance, window, stride, average, model
    )
    result.max_offset = int(backend.max_offset)
    return result


def track_matrices(
    backend, tracks: Iterable[TrackLike], shortest: int, progress: bool = False
) -> Iterator[tuple[TrackLike, np.ndarray, np.ndarray]]:
    """(track, matrix, valid frames) of every track with a clip of `shortest` valid frames
    inside the backend's search range: frames K … T−K−1, scored with `first = K`."""
    from tqdm import tqdm

    k = int(backend.max_offset)
    for track in tqdm(list(tracks), desc="sync accuracy", disable=not progress):
        labels = np.asarray(track.labels, dtype=bool)[k : len(track.labels) - k]
        # Only a clip of valid frames is scored: a track without one is not worth its matrix.
        if not _has_run(labels, shortest):
            continue
        features = backend.features(np.asarray(track.audio))
        # A copy: torch will not wrap the read-only memory map of a corpus track.
        crops = np.array(track.crops[k : k + len(labels)])
        yield track, backend.matrix(crops, features, k), labels


def _has_run(mask: np.ndarray, n: int) -> bool:
    """Whether `mask` holds n consecutive True values (no False among n neighbours)."""
    if len(mask) < n:
        return False
    bad = np.concatenate([[0], np.cumsum(~mask)])
    return bool(np.any(bad[n:] == bad[:-n]))


# --- material: corpus tracks or a folder of videos ------------------------------------------


def find_corpus(root: str | Path | None = None, config: str = "sync-light-asd"):
    """The built corpus at `root`, else that of a training config, never building it.

    Where `syncasd.train.open_corpus` would build a missing corpus (hours), an evaluation says
    so instead; the location is `syncasd.train.corpus_location`'s.
    """
    from ..data.corpus import Corpus
    from ..train import TrainConfig, corpus_location

    if root is not None:
        return Corpus(root)
    cfg = TrainConfig.load(config)
    try:
        root, _ = corpus_location(cfg)
    except InputError as e:
        raise SyncASDError(
            f"the corpus of config {config} cannot be located ({e}); pass --corpus DIR"
        ) from None
    if not (root / "index.json").is_file():
        raise SyncASDError(
            f"no corpus at {root}: `syncasd train {cfg.model} --config {config}` builds it, "
            "or pass --corpus DIR"
        )
    return Corpus(root)


def corpus_tracks(corpus, split: str = "test", limit: int | None = None) -> list:
    """The split's tracks whose face speaks (negatives left out), in corpus order; labels
    (speaking frames) are the valid frames."""
    from ..data.splits import SPLITS

    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; one of {', '.join(SPLITS)}")
    chosen = [i for i in corpus.split(split) if not corpus.tracks[i].negative]
    if not chosen:
        raise InputError(f"{corpus.root}: the corpus has no speaking track in split {split!r}")
    return [corpus.track(i) for i in chosen[:limit]]


def folder_tracks(videos: Sequence[str | Path], limit: int | None = None, **options) -> list:
    """The longest face track of each video, every frame valid (no voice activity detection:
    the caller vouches that the visible face speaks throughout). `options` go to the Detector."""
    from ..data.labelled import tracks_from_clips
    from ..pipeline import Detector

    if not videos:
        raise InputError("no video files in the folder given")
    detector = Detector(keep_crops=True, **options)
    out = []
    for video in list(videos)[:limit]:
        # negative=True only skips the labelling (Silero VAD); every frame is made valid below.
        for track in tracks_from_clips([video], negative=True, detector=detector):
            track.labels = np.ones(len(track.labels), bool)
            out.append(track)
    if not out:
        raise InputError("no face track in the videos given")
    return out


def save_json(result: SyncAccuracy, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        json.dump(result.to_dict(), f, indent=1)
    return path


def report(result: SyncAccuracy) -> Report:
    r = Report("Sync accuracy")
    r.text(
        f"{result.model}: share of clips whose audio-visual offset is found within "
        f"±{result.tolerance} frame(s) of the truth (0), searching ±{result.max_offset} frames, "
        f"{result.tracks} tracks (IC-SyncNet §5.1, Table 1)."
    )
    r.text(result.table())
    return r


__all__ = [
    "CLIP_LENGTHS",
    "SyncAccuracy",
    "backend_window",
    "clip_offsets",
    "corpus_tracks",
    "evaluate_sync_accuracy",
    "find_corpus",
    "folder_tracks",
    "report",
    "save_json",
    "sync_accuracy",
    "track_matrices",
]
