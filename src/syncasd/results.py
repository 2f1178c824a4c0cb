"""Typed results of a detection run and the writers for them (AVA CSV, JSON, RTTM)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import atomic_write
from .timebase import MODEL_FPS

if TYPE_CHECKING:
    from .syncmap import TrackSync


@dataclass
class Track:
    """One face track inside one shot, on the 25 fps model timeline.

    `frames` are consecutive model-frame indices; `boxes` the face boxes in source pixels
    (x1, y1, x2, y2; detections, interpolated between them); `logits` the raw class-1 logit
    and `probs` the speaking probability (softmax) for each frame.
    """

    id: int
    shot: int
    frames: np.ndarray
    boxes: np.ndarray
    logits: np.ndarray
    probs: np.ndarray
    entity: str | None = None  # the caller's entity id when boxes came from --faces
    crops: np.ndarray | None = None  # (T, 112, 112) uint8 model inputs, with keep_crops only
    # With `sync`: the track's offset analysis and, per frame, P(lips and voice in sync).
    sync: TrackSync | None = None
    sync_probs: np.ndarray | None = None

    @property
    def start(self) -> int:
        return int(self.frames[0])

    @property
    def end(self) -> int:
        """Last model frame (inclusive)."""
        return int(self.frames[-1])


@dataclass
class Turn:
    """A speaking turn of one face track, in seconds of the source video."""

    track: int
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Result:
    """Everything `syncasd.detect` found in one video."""

    path: str
    video_id: str
    width: int
    height: int
    source_fps: float
    start: float  # seconds of the source video where model frame 0 lies
    n_frames: int  # model frames analysed
    tracks: list[Track]
    threshold: float = 0.5
    turns: list[Turn] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def entity_id(self, track: Track) -> str:
        """AVA entity id: the caller's, or `<video_id>:<track id>`."""
        return track.entity or f"{self.video_id}:{track.id}"

    def timestamp(self, frame: int | np.ndarray) -> float | np.ndarray:
        """Source-video time (s) of a model frame."""
        return self.start + np.asarray(frame) / MODEL_FPS


def speaking_turns(
    tracks: list[Track],
    start: float,
    threshold: float = 0.5,
    min_duration: float = 0.0,
    merge_gap: float = 0.0,
) -> list[Turn]:
    """Runs of frames with probability ≥ threshold, gaps ≤ merge_gap merged, short turns dropped."""
    # Work in whole frames so that gaps and lengths compare exactly.
    max_gap = int(np.floor(merge_gap * MODEL_FPS + 1e-6))
    min_frames = int(np.ceil(min_duration * MODEL_FPS - 1e-6))
    turns: list[Turn] = []
    for track in tracks:
        speaking = track.probs >= threshold
        edges = np.flatnonzero(np.diff(np.r_[0, speaking.astype(np.int8), 0]))
        runs: list[list[int]] = []
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            if runs and a - runs[-1][1] <= max_gap:
                runs[-1][1] = b
            else:
                runs.append([a, b])
        turns += [
            Turn(
                track.id,
                start + (track.start + a) / MODEL_FPS,
                start + (track.start + b) / MODEL_FPS,
            )
            for a, b in runs
            if b - a >= min_frames
        ]
    return sorted(turns, key=lambda t: (t.start, t.track))


AVA_COLUMNS = [
    "video_id",
    "frame_timestamp",
    "entity_box_x1",
    "entity_box_y1",
    "entity_box_x2",
    "entity_box_y2",
    "label",
    "entity_id",
    "score",
]
EXTRA_COLUMNS = ["logit", "model_frame", "track", "shot"]
SYNC_COLUMNS = ["sync_prob", "sync_offset"]  # with `detect --sync`


def write_csv(result: Result, path: str | Path) -> None:
    """AVA-ActiveSpeaker prediction layout (boxes normalised to [0, 1]) plus extra columns."""
    scale = np.array([result.width, result.height, result.width, result.height], dtype=float)
    synced = any(t.sync is not None for t in result.tracks)
    with atomic_write(path, newline="") as f:
        out = csv.writer(f)
        out.writerow(AVA_COLUMNS + EXTRA_COLUMNS + (SYNC_COLUMNS if synced else []))
        rows = []
        for track in result.tracks:
            boxes = np.clip(track.boxes / scale, 0.0, 1.0)
            times = result.timestamp(track.frames)
            for i, frame in enumerate(track.frames):
                speaking = track.probs[i] >= result.threshold
                sync = []
                if synced:
                    sync = ["", ""]
                    if track.sync is not None and track.sync_probs is not None:
                        sync = [f"{track.sync_probs[i]:.6f}", track.sync.offset_frames]
                rows.append(
                    (
                        int(frame),
                        track.id,
                        [
                            result.video_id,
                            f"{times[i]:.3f}",
                            *(f"{v:.6f}" for v in boxes[i]),
                            "SPEAKING_AUDIBLE" if speaking else "NOT_SPEAKING",
                            result.entity_id(track),
                            f"{track.probs[i]:.6f}",
                            f"{track.logits[i]:.6f}",
                            int(frame),
                            track.id,
                            track.shot,
                            *sync,
                        ],
                    )
                )
        rows.sort(key=lambda r: (r[0], r[1]))
        out.writerows(r[2] for r in rows)


def write_json(result: Result, path: str | Path) -> None:
    """Tracks with per-frame boxes and scores, speaking turns and run metadata."""
    doc = {
        "video": result.path,
        "video_id": result.video_id,
        "width": result.width,
        "height": result.height,
        "source_fps": result.source_fps,
        "model_fps": MODEL_FPS,
        "start": result.start,
        "n_frames": result.n_frames,
        "threshold": result.threshold,
        "tracks": [
            {
                "id": t.id,
                "entity_id": result.entity_id(t),
                "shot": t.shot,
                "start_frame": t.start,
                "end_frame": t.end,
                "start_time": round(float(result.timestamp(t.start)), 3),
                "end_time": round(float(result.timestamp(t.end + 1)), 3),
                "boxes": np.round(t.boxes, 1).tolist(),
                "logits": np.round(t.logits, 4).tolist(),
                "probs": np.round(t.probs, 4).tolist(),
            }
            for t in result.tracks
        ],
        "turns": [
            {"track": u.track, "start": round(u.start, 3), "end": round(u.end, 3)}
            for u in result.turns
        ],
        "metadata": result.metadata,
    }
    for t, entry in zip(result.tracks, doc["tracks"], strict=True):
        if t.sync is not None and t.sync_probs is not None:
            entry["sync"] = {k: v for k, v in t.sync.to_dict().items() if k != "track_id"}
            entry["sync_probs"] = np.round(t.sync_probs, 4).tolist()
    with atomic_write(path) as f:
        json.dump(doc, f, indent=1)


def write_rttm(result: Result, path: str | Path) -> None:
    """NIST RTTM: one SPEAKER line per turn; the speaker name is the face track's entity id."""
    names = {t.id: result.entity_id(t) for t in result.tracks}
    with atomic_write(path) as f:
        for u in result.turns:
            f.write(
                f"SPEAKER {result.video_id} 1 {u.start:.3f} {u.duration:.3f} "
                f"<NA> <NA> {names[u.track]} <NA> <NA>\n"
            )


WRITERS: dict[str, Callable[[Result, str | Path], None]] = {
    "csv": write_csv,
    "json": write_json,
    "rttm": write_rttm,
}


def get_writer(fmt: str) -> Callable[[Result, str | Path], None]:
    """The writer for an output format (`csv`, `json`, `rttm`)."""
    try:
        return WRITERS[fmt]
    except KeyError:
        raise ValueError(f"unknown output format {fmt!r}; choose from {sorted(WRITERS)}") from None
