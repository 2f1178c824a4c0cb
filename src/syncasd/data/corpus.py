"""A training corpus: every labelled face track of a set of clips in a few memory-mapped arrays.

Built once from the per-clip track cache (`syncasd.data.labelled`, keyed by each file's sha256):

    ROOT/index.json     one entry per track: video id, identity, split, source sha256, offset
    ROOT/crops.npy      (N, 112, 112) uint8, every track's frames one after the other
    ROOT/audio.npy      (640·N,) int16, the audio under those frames
    ROOT/labels.npy     (N,) bool, speaking per frame
    ROOT/features/*.npy (N, d) float16 front-end embeddings of a frozen encoder (`embeddings`)

No epoch decodes a video: training reads slices of these arrays, which the OS pages in.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, atomic_write
from ..audio import SAMPLES_PER_FRAME
from ..errors import SyncASDError
from .labelled import LabelledTrack, tracks_from_clips
from .splits import Split, identity_of

log = logging.getLogger("syncasd")

CORPUS_VERSION = 1


@dataclass(frozen=True)
class CorpusTrack:
    """Where one face track lies in the corpus arrays."""

    video_id: str
    identity: str
    split: str
    source: str  # the clip's path when the corpus was built
    sha256: str
    offset: int  # first frame in crops / labels (audio: offset · 640)
    length: int
    negative: bool  # the face never speaks (music bed, silence)

    @property
    def frames(self) -> slice:
        return slice(self.offset, self.offset + self.length)


def _write_array(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, array)


class Corpus:
    """The arrays of a built corpus, memory-mapped read-only."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        index = self.root / "index.json"
        if not index.is_file():
            raise SyncASDError(f"{self.root}: no corpus here (index.json missing); build it first")
        meta = json.loads(index.read_text())
        if meta.get("version") != CORPUS_VERSION:
            raise SyncASDError(f"{self.root}: corpus of another version; delete it and rebuild")
        self.tracks = [CorpusTrack(**t) for t in meta["tracks"]]
        self.skipped: list[dict[str, str]] = meta.get("skipped", [])
        self.crops = np.load(self.root / "crops.npy", mmap_mode="r")
        self.audio = np.load(self.root / "audio.npy", mmap_mode="r")
        self.labels = np.load(self.root / "labels.npy", mmap_mode="r")

    def __len__(self) -> int:
        return len(self.tracks)

    def split(self, name: str) -> list[int]:
        """Indices of the tracks in split `name`."""
        return [i for i, t in enumerate(self.tracks) if t.split == name]

    def track(self, i: int) -> LabelledTrack:
        """Track `i` as a LabelledTrack (views into the memory-mapped arrays)."""
        t = self.tracks[i]
        a, n = t.offset, t.length
        return LabelledTrack(
            video_id=t.video_id,
            entity=f"{t.video_id}:0",
            crops=self.crops[a : a + n],
            audio=self.audio[a * SAMPLES_PER_FRAME : (a + n) * SAMPLES_PER_FRAME],
            labels=np.asarray(self.labels[a : a + n]),
            timestamps=np.arange(n, dtype=np.float64) / 25.0,
        )

    def embeddings(
        self,
        key: str,
        encode: Callable[[np.ndarray], np.ndarray],
        *,
        splits: Sequence[str] | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """(N, d) float16 embeddings of every frame, `encode(crops of one track) → (T, d)`,
        computed once and cached under `features/<key>.npy` (key names the encoder and its
        weights: the caller's job). With `splits`, only those splits' tracks are encoded; the
        other rows stay zero (and the file name says which splits it holds)."""
        if splits is not None:
            key = f"{key}-{'+'.join(sorted(splits))}"
        path = self.root / "features" / f"{key}.npy"
        if path.is_file():
            out = np.load(path, mmap_mode="r")
            if out.shape[0] == self.labels.shape[0]:
                return out
        path.parent.mkdir(parents=True, exist_ok=True)
        from tqdm import tqdm

        chosen = [t for t in self.tracks if splits is None or t.split in splits]
        with atomic_path(path) as tmp:
            out = None
            for t in tqdm(chosen, desc=f"embeddings {key}", disable=not progress):
                part = np.asarray(encode(np.asarray(self.crops[t.frames])), np.float16)
                if out is None:  # the width is known once the first track is encoded
                    shape = (self.labels.shape[0], part.shape[1])
                    out = np.lib.format.open_memmap(tmp, "w+", np.float16, shape)
                out[t.frames] = part
            if out is None:
                raise SyncASDError(f"{self.root}: no track to encode")
            out.flush()
            del out
        return np.load(path, mmap_mode="r")


def build_corpus(
    clips: Sequence[str | Path],
    root: str | Path,
    split: Split,
    *,
    detector=None,
    progress: bool = False,
) -> Corpus:
    """Extract (or take from the track cache) the face track of every clip and write the corpus.

    Clips whose identity is in no split are left out; unreadable clips and clips without a face
    are skipped with one line each, and listed in the index under "skipped".
    """
    from tqdm import tqdm

    from ..models.zoo import sha256_file
    from ..pipeline import Detector

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if detector is None:
        detector = Detector(keep_crops=True, allow_silent=True)
    entries: list[dict] = []
    skipped: list[dict[str, str]] = []
    crops: list[np.ndarray] = []
    audio: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    offset = 0
    for clip in tqdm(list(clips), desc="tracks", disable=not progress):
        clip = Path(clip)
        name = split.split_of(clip)
        if name is None:
            continue
        try:
            found = tracks_from_clips([clip], negative=split.is_negative(clip), detector=detector)
        except SyncASDError as e:
            log.warning("skipped %s", e)
            skipped.append({"source": str(clip), "error": str(e)})
            continue
        if not found:
            skipped.append({"source": str(clip), "error": "no face track"})
            continue
        track = found[0]
        entries.append(
            asdict(
                CorpusTrack(
                    video_id=track.video_id,
                    identity=identity_of(clip),
                    split=name,
                    source=str(clip),
                    sha256=sha256_file(clip),
                    offset=offset,
                    length=len(track),
                    negative=split.is_negative(clip),
                )
            )
        )
        crops.append(track.crops)
        audio.append(track.audio)
        labels.append(track.labels)
        offset += len(track)
    if not entries:
        raise SyncASDError("no usable face track in the clips given")
    _write_array(root / "crops.npy", np.concatenate(crops))
    _write_array(root / "audio.npy", np.concatenate(audio))
    _write_array(root / "labels.npy", np.concatenate(labels).astype(bool))
    with atomic_write(root / "index.json") as f:
        json.dump({"version": CORPUS_VERSION, "tracks": entries, "skipped": skipped}, f)
    if skipped:
        log.warning(
            "%d of %d clips skipped (see %s)", len(skipped), len(clips), root / "index.json"
        )
    return Corpus(root)


def corpus_key(clips: Sequence[str | Path], split_file: str | Path) -> str:
    """A short name for the corpus of these clips under this split (paths and split content)."""
    h = hashlib.sha256(Path(split_file).read_bytes())
    for clip in sorted(map(str, clips)):
        h.update(clip.encode())
    return h.hexdigest()[:16]
