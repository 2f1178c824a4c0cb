"""AVA-ActiveSpeaker as a training corpus, read from the tree TalkNet-ASD's preprocessing writes.

TalkNet-ASD's `preprocess_AVA` (utils/tools.py; Light-ASD and LR-ASD train on the same tree)
leaves, under ROOT:

    csv/{split}_loader.csv     one line per entity track, tab-separated: entity_id, frames,
                               fps, [0/1 label per frame], an index (ignored)
    clips_audios/{split}/{video_id}/{entity_id}.wav
                               16 kHz mono int16, from the entity's first timestamp to its last
    clips_videos/{split}/{video_id}/{entity_id}/{timestamp:.2f}.jpg
                               the annotated face box cut out of the frame (BGR, no margin)

Labels are TalkNet's: 1 = SPEAKING_AUDIBLE; NOT_SPEAKING and SPEAKING_NOT_AUDIBLE are 0. AVA
has no identity labels, so a track's identity is its video (AVA's train and val videos are
disjoint) and its split is the AVA split. Only train and val: AVA's test labels are not public
(TalkNet's test_loader.csv holds all-ones placeholders).

Crops: the jpg is the face box, cropped as the detect pipeline crops any box (`face_crop`:
s = half the longer side, rows cy − s … cy + 1.8s, columns cx ± 1.4s, 224×224, centre 112×112
gray), the crop `tracks_from_ava` and `syncasd detect --faces` take of AVA boxes, so a model is
trained on what it sees at inference. The part of that window outside the box (at least the
bottom 8 of the 112 rows; the sides too when the box is narrower than 0.7 of its height) is
the recipe's pad gray, as the jpg holds nothing beyond the box. TalkNet's own dataLoader
instead squeezes the whole jpg to 112×112.

Timebase: AVA is annotated at each movie's frame rate (the loader's fps: 25, 29.97, 30, …). A
track becomes round(frames · 25 / fps) model frames at t0 + k/25, each with the crop and label
of the nearest annotated frame and the 640 samples from k·640 of the entity's wav (zeros past
its end: the wav stops at the last timestamp, so the last frame's audio is mostly zeros).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..faces.crop import face_crop
from ..timebase import MODEL_FPS, SAMPLE_RATE
from .corpus import Corpus, CorpusWriter
from .labelled import LabelledTrack, nearest, track_audio

SPLITS = ("train", "val")
LAYOUT = "the tree TalkNet-ASD's preprocess_AVA writes (csv/, clips_audios/, clips_videos/)"


@dataclass(frozen=True)
class _Entity:
    """One line of a loader CSV."""

    entity: str
    video_id: str
    fps: float
    labels: np.ndarray  # (frames,) bool, in timestamp order


def _read_loader(root: Path, split: str) -> list[_Entity]:
    if split not in SPLITS:
        raise InputError(
            f"AVA split {split!r}: use train or val (AVA's test labels are not public)"
        )
    path = root / "csv" / f"{split}_loader.csv"
    if not path.is_file():
        raise InputError(f"{path}: not found; an AVA folder is {LAYOUT}")
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        try:
            entity, frames, fps = parts[0], int(parts[1]), float(parts[2])
            labels = np.asarray(json.loads(parts[3]), np.int64) == 1
        except (IndexError, ValueError, TypeError):
            raise InputError(
                f"{path}:{n}: not a TalkNet loader line "
                "(entity_id, frames, fps, [labels], index; tab-separated)"
            ) from None
        if labels.ndim != 1 or len(labels) != frames or frames < 1 or fps <= 0:
            raise InputError(f"{path}:{n}: {frames} frames at {fps} fps, {labels.size} labels")
        # `<video_id>_<start>_<end>:<n>`; a video id may itself hold "_" (AVA's _145Aa_xkuE).
        video_id = entity.rsplit(":", 1)[0].rsplit("_", 2)[0]
        out.append(_Entity(entity, video_id, fps, labels))
    return out


def _paths(root: Path, split: str, video_id: str, entity: str) -> tuple[Path, Path]:
    """The entity's face-frame folder and wav."""
    return (
        root / "clips_videos" / split / video_id / entity,
        root / "clips_audios" / split / video_id / f"{entity}.wav",
    )


def _read_wav(path: Path) -> np.ndarray:
    from scipy.io import wavfile

    if not path.is_file():
        raise InputError(f"{path}: no such file (an AVA folder is {LAYOUT})")
    try:
        rate, audio = wavfile.read(path)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable WAV file ({e})") from None
    if rate != SAMPLE_RATE or audio.ndim != 1 or audio.dtype != np.int16:
        channels = 1 if audio.ndim == 1 else audio.shape[1]
        raise InputError(
            f"{path}: {rate} Hz, {channels} channel(s), {audio.dtype}; AVA clips must be "
            "16 kHz mono 16-bit PCM, as TalkNet's extract_audio writes them"
        )
    return audio


def _crop(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    if image is None:
        raise InputError(f"{path}: not a readable image")
    h, w = image.shape[:2]
    return face_crop(image, w / 2, h / 2, max(w, h) / 2)  # the jpg is the face box


def _track(root: Path, split: str, e: _Entity) -> LabelledTrack:
    folder, wav = _paths(root, split, e.video_id, e.entity)
    files = list(folder.glob("*.jpg"))
    if not files:
        raise InputError(f"{folder}: no face frames (*.jpg) of entity {e.entity}")
    try:
        stamped = sorted((float(f.stem), f) for f in files)
    except ValueError:
        raise InputError(f"{folder}: face frames are named by timestamp (900.04.jpg)") from None
    if len(stamped) != len(e.labels):
        raise InputError(
            f"{folder}: {len(stamped)} face frames but {len(e.labels)} labels in {split}_loader.csv"
        )
    audio = _read_wav(wav)
    times = np.array([t for t, _ in stamped])
    n = max(1, round(len(stamped) * MODEL_FPS / e.fps))
    stamps = times[0] + np.arange(n) / MODEL_FPS
    pick = nearest(times, stamps)
    crops = {i: _crop(stamped[i][1]) for i in np.unique(pick)}  # < 25 fps repeats frames
    return LabelledTrack(
        video_id=e.video_id,
        entity=e.entity,
        crops=np.stack([crops[i] for i in pick]),
        audio=track_audio(audio, 0, n),
        labels=e.labels[pick],
        timestamps=stamps,
    )


def ava_tracks(root: str | Path, split: str) -> Iterator[LabelledTrack]:
    """The labelled entity tracks of an AVA split ("train" or "val"), in loader-CSV order.

    The CSV is read at the call (a missing one fails here); the frames and audio of each track
    as it is taken.
    """
    root = Path(root)
    entities = _read_loader(root, split)
    return (_track(root, split, e) for e in entities)


def ava_corpus_key(root: str | Path) -> str:
    """A folder name for the corpus of the AVA tree at `root` (by its absolute path)."""
    return "ava-" + hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]


def build_ava_corpus(
    root: str | Path,
    out: str | Path,
    splits: Sequence[str] = SPLITS,
    progress: bool = True,
) -> Corpus:
    """The corpus of an AVA tree's splits at `out`: opened if built, else built (one pass over
    every face jpg and wav; a missing CSV, wav or frame folder is an InputError)."""
    from tqdm import tqdm

    from ..models.zoo import sha256_file

    out, root = Path(out), Path(root)
    if (out / "index.json").is_file():
        return Corpus(out)
    if not root.is_dir():
        raise InputError(f"{root}: no such folder (an AVA folder is {LAYOUT})")
    # Every CSV first, so that a missing one fails before hours of decoding.
    entities = {split: _read_loader(root, split) for split in splits}
    total = sum(map(len, entities.values()))
    with CorpusWriter(out) as writer, tqdm(total=total, desc="AVA", disable=not progress) as bar:
        for split, found in entities.items():
            for e in found:
                track = _track(root, split, e)
                folder, wav = _paths(root, split, e.video_id, e.entity)
                writer.add(
                    track,
                    identity=e.video_id,
                    split=split,
                    source=str(folder),
                    sha256=sha256_file(wav),
                    negative=not track.labels.any(),  # the entity never speaks
                )
                bar.update()
        if not writer.entries:
            raise InputError(f"{root}: the loader CSVs of {', '.join(splits)} list no entity")
    return Corpus(out)
