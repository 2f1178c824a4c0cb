"""The Columbia ASD benchmark: per-speaker F1 as TalkNet's `evaluate_col_ASD` computes it.

TalkNet (demoTalkNet.py) and Light-ASD (Columbia_test.py) share this protocol, and the
published Columbia numbers come from it, so we reproduce it step by step, quirks included:

- Labels: one `<speaker>.txt` per speaker, lines `frame x y size label` (tab-separated) with
  the frame at 29.97 fps, mapped to the 25 fps model frame `int(frame / 29.97 * 25)`; the box
  is the square `(x, y, x + size, y + size)` in the labels' 640×360 frame. Two label frames can
  map to one model frame; both are scored.
- Scores: per track, frame i gets the mean of the raw class-1 logits over
  `[max(i - 2, 0), min(i + 3, n - 1))`. The end bound `n - 1` (not `n`) means the last logit of
  a track never enters any mean; we keep that. Where the slice is empty (n == 1) we use the
  logit itself (the original's `numpy.mean([])` would give nan, i.e. "not speaking").
- Matching: a labelled face takes the predicted face of the same model frame that covers it
  best, measured as intersection / area of the *predicted* box (not IoU), kept only above 0.5.
  Ties go to the higher score rounded to two decimals (the original sorts `[overlap,
  round(score, 2)]` pairs and takes the last). No match means "not speaking".
- Decision: `round(score, 2) > 0`, so a mean logit below 0.005 counts as not speaking.
- Boxes: the original's boxes are its square crop boxes (centre ± half the longer side, in
  its 1280×720 frames) halved with `int(v) // 2` to label pixels. Our CSV boxes are
  normalised detection boxes; by default we square them the same way and scale them to
  `label_size` with `int()`.
- F1 per speaker is sklearn's `f1_score` (0 where undefined), accuracy is `accuracy_score`;
  the average F1 leaves out `exclude` (the original never prints "abbas").
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..scoring import demo_smoothing
from ..timebase import MODEL_FPS
from .report import Report

LABEL_FPS = 29.97
LABEL_SIZE = (640, 360)  # the frame the Columbia labels refer to
MIN_OVERLAP = 0.5

Box = tuple[int, int, int, int]
PREDICTION_COLUMNS = (
    "video_id",
    "entity_box_x1",
    "entity_box_y1",
    "entity_box_x2",
    "entity_box_y2",
    "logit",
    "model_frame",
    "track",
)


@dataclass(frozen=True)
class LabelBox:
    """One labelled face: the model frame it falls on, its box in label pixels, speaking or not."""

    frame: int  # 25 fps model frame
    box: Box  # (x1, y1, x2, y2) in label pixels
    speaking: bool
    label_frame: int  # the frame index in the file (29.97 fps)


@dataclass(frozen=True)
class PredictedFace:
    """One row of a `syncasd detect` CSV: a face of a track in one model frame."""

    frame: int  # 25 fps model frame
    track: int
    box: tuple[float, float, float, float]  # normalised (x1, y1, x2, y2) of the source video
    logit: float  # raw class-1 logit


@dataclass(frozen=True)
class SpeakerScore:
    """Confusion counts of one speaker over its labelled frames."""

    name: str
    frames: int
    positives: int
    tp: int
    fp: int
    fn: int

    @property
    def tn(self) -> int:
        return self.frames - self.tp - self.fp - self.fn

    @property
    def f1(self) -> float:
        """F1 in percent; 0 where undefined (no positives labelled or predicted), as sklearn."""
        denominator = 2 * self.tp + self.fp + self.fn
        return 100.0 * 2 * self.tp / denominator if denominator else 0.0

    @property
    def accuracy(self) -> float:
        """Accuracy in percent; 0 for a speaker without labelled frames."""
        return 100.0 * (self.tp + self.tn) / self.frames if self.frames else 0.0


@dataclass(frozen=True)
class ColumbiaResult:
    """Per-speaker scores (sorted by name) and which speakers stay out of the average."""

    speakers: tuple[SpeakerScore, ...]
    exclude: tuple[str, ...] = ("abbas",)

    @property
    def included(self) -> tuple[SpeakerScore, ...]:
        return tuple(s for s in self.speakers if s.name not in self.exclude)

    @property
    def average_f1(self) -> float:
        """Mean F1 (percent) over the included speakers; nan if none is left."""
        scores = self.included
        return sum(s.f1 for s in scores) / len(scores) if scores else math.nan

    def speaker(self, name: str) -> SpeakerScore:
        for s in self.speakers:
            if s.name == name:
                return s
        raise KeyError(name)


def to_model_frame(label_frame: int, fps: float = LABEL_FPS) -> int:
    """The 25 fps model frame of a label frame, truncated as the original: int(f / fps * 25)."""
    return int(label_frame / fps * MODEL_FPS)


def overlap(predicted: Sequence[int], label: Sequence[int]) -> float:
    """Intersection over the area of the *predicted* box (x1, y1, x2, y2), integer pixels.

    The original's `bb_intersection_over_union(pred, gt, evalCol=True)`: no +1 pixel terms;
    a predicted box without area overlaps nothing (the original would divide by zero).
    """
    xa, ya = max(predicted[0], label[0]), max(predicted[1], label[1])
    xb, yb = min(predicted[2], label[2]), min(predicted[3], label[3])
    inter = max(0, xb - xa) * max(0, yb - ya)
    area = (predicted[2] - predicted[0]) * (predicted[3] - predicted[1])
    return inter / float(area) if area > 0 else 0.0


def smooth_scores(logits: Sequence[float] | np.ndarray) -> np.ndarray:
    """The original's 5-frame mean of one track's logits, with its end bound of n - 1."""
    x = np.asarray(logits, dtype=np.float64)
    return demo_smoothing(x, len(x))


def label_pixels(
    box: Sequence[float], label_size: tuple[int, int] = LABEL_SIZE, square: bool = True
) -> Box:
    """A normalised predicted box in integer label pixels, squared like the original's crops.

    With `square`, the box becomes centre ± half its longer side (the original's crop box
    `x ± s`); then every coordinate is truncated with int(), as the original's `int(v) // 2`.
    """
    width, height = label_size
    x1, y1, x2, y2 = box[0] * width, box[1] * height, box[2] * width, box[3] * height
    if square:
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        s = max(x2 - x1, y2 - y1) / 2
        x1, y1, x2, y2 = cx - s, cy - s, cx + s, cy + s
    return int(x1), int(y1), int(x2), int(y2)


_INT = re.compile(r"[+-]?\d+")


def read_labels(folder: str | Path, *, fps: float = LABEL_FPS) -> dict[str, list[LabelBox]]:
    """All `<speaker>.txt` label files of a folder, by speaker name (sorted).

    Each non-blank line is `frame x y size label` (tab- or space-separated integers,
    label 0 or 1); frames map to model frames with `to_model_frame(frame, fps)`.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder of Columbia label files (<speaker>.txt)")
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise InputError(f"{folder}: no label files; expected one <speaker>.txt per speaker")
    labels: dict[str, list[LabelBox]] = {}
    for path in files:
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"{path}: cannot read ({e})") from None
        boxes: list[LabelBox] = []
        for number, line in enumerate(lines, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 5 or not all(_INT.fullmatch(v) for v in fields):
                raise InputError(
                    f"{path}:{number}: expected 5 integers 'frame x y size label' "
                    f"(tab-separated), got {line.strip()!r}"
                )
            frame, x, y, size, label = (int(v) for v in fields)
            if frame < 0 or size <= 0 or label not in (0, 1):
                raise InputError(
                    f"{path}:{number}: expected frame >= 0, size > 0 and label 0 or 1, "
                    f"got {line.strip()!r}"
                )
            boxes.append(
                LabelBox(to_model_frame(frame, fps), (x, y, x + size, y + size), label == 1, frame)
            )
        labels[path.stem] = boxes
    return labels


def read_predictions(path: str | Path, *, video_id: str | None = None) -> list[PredictedFace]:
    """The faces of one video from a `syncasd detect` CSV (header row required).

    A CSV with several videos needs `video_id` to say which one is evaluated.
    """
    path = Path(path)
    faces: list[PredictedFace] = []
    videos: dict[str, list[PredictedFace]] = {}
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in PREDICTION_COLUMNS if c not in header]
            if missing:
                raise InputError(
                    f"{path}: missing column(s) {', '.join(missing)}; expected the CSV of "
                    f"`syncasd detect` with a header row ({', '.join(PREDICTION_COLUMNS)}, ...)"
                )
            for row in reader:
                try:
                    face = PredictedFace(
                        frame=int(row["model_frame"]),
                        track=int(row["track"]),
                        box=tuple(float(row[f"entity_box_{k}"]) for k in ("x1", "y1", "x2", "y2")),
                        logit=float(row["logit"]),
                    )
                except (TypeError, ValueError):
                    raise InputError(
                        f"{path}:{reader.line_num}: expected integer model_frame and track and "
                        f"numeric boxes and logit, got {row}"
                    ) from None
                videos.setdefault(row["video_id"], []).append(face)
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not a text CSV ({e})") from None
    if video_id is not None:
        if videos and video_id not in videos:
            raise InputError(
                f"{path}: no rows for video_id {video_id!r} (found: {', '.join(sorted(videos))})"
            )
        faces = videos.get(video_id, [])
    elif len(videos) > 1:
        raise InputError(
            f"{path}: rows of {len(videos)} videos ({', '.join(sorted(videos))}); "
            "pass the video_id to evaluate"
        )
    else:
        faces = next(iter(videos.values()), [])
    return faces


def smoothed_faces(
    faces: Iterable[PredictedFace],
) -> dict[int, list[tuple[PredictedFace, float]]]:
    """Faces by model frame, each with its track's smoothed score (tracks ordered by frame)."""
    tracks: dict[int, list[PredictedFace]] = {}
    for face in faces:
        tracks.setdefault(face.track, []).append(face)
    by_frame: dict[int, list[tuple[PredictedFace, float]]] = {}
    for track_id, rows in tracks.items():
        rows.sort(key=lambda r: r.frame)
        frames = [r.frame for r in rows]
        if len(set(frames)) != len(frames):
            raise InputError(f"track {track_id} has two rows for one model frame")
        for face, score in zip(rows, smooth_scores([r.logit for r in rows]), strict=True):
            by_frame.setdefault(face.frame, []).append((face, float(score)))
    return by_frame


def evaluate(
    labels: Mapping[str, Sequence[LabelBox]],
    faces: Iterable[PredictedFace],
    *,
    label_size: tuple[int, int] = LABEL_SIZE,
    exclude: Sequence[str] = ("abbas",),
    square: bool = True,
    n_frames: int | None = None,
) -> ColumbiaResult:
    """Score predicted faces against Columbia labels (see the module docstring for the rules).

    `n_frames`, if given, drops labels at model frames >= n_frames: the original only visits
    the frames its video has, while a predictions CSV cannot tell how long the video was.
    """
    by_frame = smoothed_faces(faces)
    boxes = {
        frame: [(label_pixels(f.box, label_size, square), score) for f, score in rows]
        for frame, rows in by_frame.items()
    }
    speakers = []
    for name in sorted(labels):
        tp = fp = fn = frames = positives = 0
        for label in labels[name]:
            if n_frames is not None and label.frame >= n_frames:
                continue
            matches = [
                (o, round(score, 2))
                for box, score in boxes.get(label.frame, [])
                if (o := overlap(box, label.box)) > MIN_OVERLAP
            ]
            predicted = max(matches)[1] > 0 if matches else False
            frames += 1
            positives += label.speaking
            tp += predicted and label.speaking
            fp += predicted and not label.speaking
            fn += label.speaking and not predicted
        speakers.append(SpeakerScore(name, frames, positives, tp, fp, fn))
    return ColumbiaResult(tuple(speakers), tuple(exclude))


def columbia_f1(
    labels_folder: str | Path,
    predictions_csv: str | Path,
    *,
    label_size: tuple[int, int] = LABEL_SIZE,
    fps: float = LABEL_FPS,
    exclude: Sequence[str] = ("abbas",),
    video_id: str | None = None,
    square: bool = True,
    n_frames: int | None = None,
) -> ColumbiaResult:
    """Columbia F1 of a `syncasd detect` CSV against a folder of `<speaker>.txt` labels.

    `label_size` is the (width, height) of the frame the labels refer to: 640×360 for
    Columbia (the original compares them with its 1280×720 boxes halved). `fps` is the label
    frame rate; `exclude` lists speakers left out of the average F1.
    """
    labels = read_labels(labels_folder, fps=fps)
    faces = read_predictions(predictions_csv, video_id=video_id)
    return evaluate(
        labels,
        faces,
        label_size=label_size,
        exclude=exclude,
        square=square,
        n_frames=n_frames,
    )


def format_lines(result: ColumbiaResult) -> list[str]:
    """The original's printout: `name, ACC:xx.xx, F1:xx.xx` per included speaker, then average."""
    lines = [f"{s.name}, ACC:{s.accuracy:.2f}, F1:{s.f1:.2f}" for s in result.included]
    return [*lines, f"Average F1:{result.average_f1:.2f}"]


def report(result: ColumbiaResult, title: str = "Columbia ASD") -> Report:
    """A Markdown report: per-speaker table, the average F1 and a bar chart of F1."""
    r = Report(title)
    r.text(
        "Columbia active speaker detection, scored as TalkNet's `evaluate_col_ASD`: per "
        "labelled face, the predicted face covering it best (over half of the predicted box) "
        "decides with its 5-frame mean logit > 0; F1 and accuracy are in percent."
    )
    rows = [
        [
            s.name if s.name not in result.exclude else f"{s.name} (excluded)",
            s.frames,
            s.positives,
            s.f1,
            s.accuracy,
        ]
        for s in result.speakers
    ]
    r.table(["speaker", "frames", "positives", "F1", "accuracy"], rows)
    r.text(f"**Average F1: {result.average_f1:.2f}**")
    fig, ax = r.figure("f1_per_speaker", "F1 per speaker (excluded speakers in gray)")
    names = [s.name for s in result.speakers]
    colors = ["gray" if n in result.exclude else "tab:blue" for n in names]
    ax.bar(names, [s.f1 for s in result.speakers], color=colors)
    if not math.isnan(result.average_f1):
        ax.axhline(result.average_f1, color="tab:red", linestyle="--", label="average F1")
        ax.legend(loc="lower right")
    ax.set_ylim(0, 100)
    ax.set_ylabel("F1 (%)")
    return r
