"""Labelled face tracks: the unit every evaluation protocol works on.

A `LabelledTrack` is what an ASD model sees of one face track (its 112×112 crops and the audio
under it) with a speaking label per 25 fps frame. Two sources:

- `tracks_from_ava`: videos with AVA-ActiveSpeaker ground truth (boxes, labels, entity ids).
  The caller's boxes are cropped; each model frame takes the label of the nearest ground-truth
  timestamp of its entity.
- `tracks_from_clips`: single-speaker clips (the visible face is the voice), labelled from word
  timings when the clip has them (GRID `.align`, LRS2 `.txt`), from Silero VAD otherwise, or
  all negative (`negative=True`: a moving face under music or silence). The clip's longest
  face track is used.

Crops and labels do not depend on the model, so they are cached on disk (keyed by the sha256
of the file's content and the options) and every model is scored and trained on the same
tracks, wherever the file lies.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..audio import speech_frames
from ..errors import InputError, SyncASDError
from ..evaluate.ava_map import POSITIVE
from ..timebase import MODEL_FPS, SAMPLES_PER_FRAME

log = logging.getLogger("syncasd")

# Pauses shorter than this inside a word-timed utterance still count as speaking, as AVA's
# annotators mark turns rather than words.
MAX_WORD_GAP_S = 0.3


@dataclass
class LabelledTrack:
    """One face track as a model sees it, with a label per 25 fps frame."""

    video_id: str
    entity: str
    crops: np.ndarray  # (T, 112, 112) uint8
    audio: np.ndarray  # (640·T,) int16, the audio under the track
    labels: np.ndarray  # (T,) bool: speaking (and audible)
    timestamps: np.ndarray  # (T,) float64, source-video seconds of each frame

    def __len__(self) -> int:
        return len(self.labels)

    def segments(self) -> list[tuple[int, int]]:
        """Speaking segments as [start, end) frame ranges."""
        return speech_segments(self.labels)


def speech_segments(labels: np.ndarray) -> list[tuple[int, int]]:
    """The runs of speaking frames of per-frame labels as [start, end) frame ranges."""
    edges = np.diff(np.concatenate([[0], (np.asarray(labels) != 0).astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def track_audio(audio: np.ndarray, first: int, n: int) -> np.ndarray:
    """Samples under model frames [first, first + n), zero-padded past the end of the file."""
    out = np.zeros(n * SAMPLES_PER_FRAME, np.int16)
    piece = audio[first * SAMPLES_PER_FRAME : (first + n) * SAMPLES_PER_FRAME]
    out[: len(piece)] = piece
    return out


def _detector(detector, **options):
    from ..pipeline import Detector

    if detector is None:
        return Detector(keep_crops=True, allow_silent=True, **options)
    if not detector.options.keep_crops:
        raise ValueError("labelled tracks need a Detector(keep_crops=True)")
    return detector


# Detector options that change the crops or the labels; the rest (which model scores along the
# way, threads, progress bars) do not enter the cache key.
_SCORE_ONLY = {"model", "weights", "device", "backend", "threads", "progress", "batch"}
CACHE_VERSION = 4  # bump when what is cached (crops, labels, ids) is made differently


def _detector_key(detector) -> dict:
    """A given Detector's options that change what it returns (those not at their defaults),
    for the cache key: a detector cropping for SyncNet must not read gray crops cached."""
    if detector is None:
        return {}
    from ..pipeline import DetectOptions

    defaults = asdict(DetectOptions())
    plumbing = {"keep_crops", "allow_silent", "score"}
    return {
        k: v for k, v in asdict(detector.options).items() if k not in plumbing and v != defaults[k]
    }


def _detect(detector, path: Path):
    """The detector's result (with crops) and the file's audio on the same timeline."""
    from .. import media  # PyAV: imported where a video is read

    result = detector(path)
    return result, media.read_audio(path, origin=media.probe(path).origin)


def _labelled(video_id: str, result, track, audio: np.ndarray, labels: np.ndarray):
    return LabelledTrack(
        video_id=video_id,
        entity=result.entity_id(track),
        crops=track.crops,
        audio=track_audio(audio, track.start, len(track.frames)),
        labels=labels,
        timestamps=np.asarray(result.timestamp(track.frames), np.float64),
    )


def _cache_file(kind: str, path: Path, extra: dict) -> Path:
    from ..models.zoo import cache_dir, sha256_file

    extra = {k: v for k, v in extra.items() if k not in _SCORE_ONLY}
    key = json.dumps([CACHE_VERSION, kind, sha256_file(path), extra], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return cache_dir() / "tracks" / f"{path.stem}-{digest}.npz"


def _save(file: Path, tracks: list[LabelledTrack]) -> None:
    from ..atomic import atomic_path

    file.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for i, t in enumerate(tracks):
        for name in ("crops", "audio", "labels", "timestamps"):
            arrays[f"{i}.{name}"] = getattr(t, name)
    meta = [(t.video_id, t.entity) for t in tracks]
    with atomic_path(file) as tmp, open(tmp, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **arrays)


def _load(file: Path) -> list[LabelledTrack]:
    with np.load(file) as z:
        meta = json.loads(str(z["meta"]))
        return [
            LabelledTrack(
                video_id,
                entity,
                z[f"{i}.crops"],
                z[f"{i}.audio"],
                z[f"{i}.labels"],
                z[f"{i}.timestamps"],
            )
            for i, (video_id, entity) in enumerate(meta)
        ]


def _cached(kind: str, path: Path, extra: dict, build, cache: bool) -> list[LabelledTrack]:
    if not cache:
        return build()
    file = _cache_file(kind, path, extra)
    if file.exists():
        try:
            return _load(file)
        except (OSError, ValueError, KeyError):
            log.warning("%s: unreadable track cache, rebuilding", file)
    tracks = build()
    _save(file, tracks)
    return tracks


# --- single-speaker clips ---------------------------------------------------------------


def _lrw_ar_words(table: Path) -> list[tuple[float, float]]:
    """Word intervals of an LRW-AR `.csv` (`conf,end,start,word`).

    A clip is cut from continuous speech, so a word without times (the one the clip starts
    inside) runs from the start of the clip to the next timed word.
    """
    words: list[tuple[float, float]] = []
    pending = False
    with open(table, newline="") as f:
        for row in csv.DictReader(f):
            try:
                start, end = float(row.get("start") or ""), float(row.get("end") or "")
            except ValueError:  # a word without times, or the header written twice
                pending = pending or (not words and row.get("word") not in (None, "", "word"))
                continue
            if pending:
                words.append((0.0, start))
                pending = False
            words.append((start, end))
    return words


def word_intervals(path: str | Path) -> list[tuple[float, float]] | None:
    """Spoken-word intervals (s) from a GRID `.align`, LRS2 `.txt` or LRW-AR `.csv` beside the
    clip, if any."""
    path = Path(path)
    align = path.with_suffix(".align")
    if not align.exists():  # GRID's id2_vcd_swwp2s.mpg: the sentence id comes last
        align = path.with_name(path.stem.split("_")[-1] + ".align")
    if align.exists():
        words = []
        for line in align.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2] not in ("sil", "sp"):
                words.append((int(parts[0]) / 25000.0, int(parts[1]) / 25000.0))
        return words
    text = path.with_suffix(".txt")
    if text.exists():
        lines = text.read_text().splitlines()
        if "WORD START END ASDSCORE" in [line.strip() for line in lines]:
            start = [line.strip() for line in lines].index("WORD START END ASDSCORE") + 1
            return [
                (float(p[1]), float(p[2]))
                for p in (line.split() for line in lines[start:])
                if len(p) >= 3
            ]
    table = path.with_suffix(".csv")
    if table.exists():
        with open(table, newline="") as f:
            header = f.readline().strip().split(",")
        if {"start", "end", "word"} <= set(header):
            return _lrw_ar_words(table)
    return None


def frames_from_intervals(
    intervals: Sequence[tuple[float, float]], n: int, max_gap: float = MAX_WORD_GAP_S
) -> np.ndarray:
    """(n,) bool: frames whose centre lies in an interval, pauses < `max_gap` s filled."""
    merged: list[list[float]] = []
    for a, b in sorted(intervals):
        if merged and a - merged[-1][1] < max_gap:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])

    centres = (np.arange(n) + 0.5) / MODEL_FPS
    out = np.zeros(n, bool)
    for a, b in merged:
        out[(centres >= a) & (centres < b)] = True
    return out


def clip_labels(path: str | Path, audio: np.ndarray, negative: bool = False) -> np.ndarray:
    """Speaking label per model frame of a single-speaker clip (see the module docstring)."""
    from .. import media  # PyAV: imported where a video is read

    n = media.model_frame_count(len(audio))
    if negative:
        return np.zeros(n, bool)
    words = word_intervals(path)
    if words is not None:
        return frames_from_intervals(words, n)
    return speech_frames(audio)[:n]


def tracks_from_clips(
    clips: Sequence[str | Path],
    *,
    negative: bool = False,
    detector=None,
    cache: bool = True,
    **options: object,
) -> list[LabelledTrack]:
    """The longest face track of each single-speaker clip, labelled (module docstring).

    Clips without a face track are skipped with a warning. `options` go to the `Detector`.
    """
    out: list[LabelledTrack] = []
    for clip in clips:
        clip = Path(clip)
        if not clip.is_file():
            raise InputError(f"{clip}: no such file")

        def build(clip: Path = clip) -> list[LabelledTrack]:
            nonlocal detector
            detector = _detector(detector, **options)
            result, audio = _detect(detector, clip)
            if not result.tracks:
                return []
            track = max(result.tracks, key=lambda t: (len(t.frames), -t.start))
            labels = clip_labels(clip, audio, negative)
            labels = np.concatenate([labels, np.zeros(result.n_frames, bool)])[track.frames]
            # VASP reuses file names in every identity folder: the folder makes the id unique.
            return [_labelled(f"{clip.parent.name}/{clip.stem}", result, track, audio, labels)]

        try:
            key = {"negative": negative, **options, **_detector_key(detector)}
            found = _cached("clip", clip, key, build, cache)
        except SyncASDError as e:
            raise InputError(f"{clip}: {e}") from None
        if not found:
            log.warning("%s: no face track; skipped", clip)
        out += found
    return out


# --- AVA-layout ground truth --------------------------------------------------------------


def read_ava_labels(gt_csv: str | Path) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """(video_id, entity_id) → (sorted timestamps, speaking-and-audible flags)."""
    rows: dict[tuple[str, str], list[tuple[float, bool]]] = {}
    try:
        with open(gt_csv, newline="") as f:
            for n, row in enumerate(csv.reader(f)):
                if not row or (n == 0 and row[0] == "video_id"):
                    continue
                if len(row) < 8:
                    raise InputError(f"{gt_csv}:{n + 1}: not the AVA-ActiveSpeaker CSV layout")
                rows.setdefault((row[0], row[7]), []).append((float(row[1]), row[6] == POSITIVE))
    except OSError as e:
        raise InputError(f"{gt_csv}: cannot read ({e.strerror or e})") from None
    except ValueError as e:
        raise InputError(f"{gt_csv}: not the AVA-ActiveSpeaker CSV layout ({e})") from None
    out = {}
    for key, values in rows.items():
        values.sort()
        out[key] = (np.array([t for t, _ in values]), np.array([y for _, y in values]))
    return out


def nearest(times: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Index of the nearest value in sorted `times` for each of `query`."""
    i = np.clip(np.searchsorted(times, query), 1, len(times) - 1) if len(times) > 1 else None
    if i is None:
        return np.zeros(len(query), int)
    left = times[i - 1]
    return np.where(np.abs(query - left) <= np.abs(times[i] - query), i - 1, i)


def tracks_from_ava(
    videos: Sequence[str | Path],
    gt_csv: str | Path,
    *,
    detector=None,
    cache: bool = True,
    **options: object,
) -> list[LabelledTrack]:
    """Face tracks of AVA-layout ground truth: the caller's boxes cropped, labels joined."""
    gt_csv = Path(gt_csv)
    labels = read_ava_labels(gt_csv)  # reads it first: a missing file is one clear error
    out: list[LabelledTrack] = []
    for video in videos:
        video = Path(video)
        if not video.is_file():
            raise InputError(f"{video}: no such file")

        def build(video: Path = video) -> list[LabelledTrack]:
            nonlocal detector
            detector = _detector(detector, faces_csv=str(gt_csv), **options)
            result, audio = _detect(detector, video)
            tracks = []
            for track in result.tracks:
                times, flags = labels[(result.video_id, track.entity)]
                stamps = np.asarray(result.timestamp(track.frames), np.float64)
                tracks.append(
                    _labelled(result.video_id, result, track, audio, flags[nearest(times, stamps)])
                )
            return tracks

        extra = {"gt": str(gt_csv.resolve()), "gt_mtime": gt_csv.stat().st_mtime_ns, **options}
        out += _cached("ava", video, extra, build, cache)
    return out
