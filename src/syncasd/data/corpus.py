"""A training corpus: every labelled face track of a set of clips in a few memory-mapped arrays.

Built once from the per-clip track cache (`syncasd.data.labelled`, keyed by each file's sha256),
or from an AVA-ActiveSpeaker tree (`syncasd.data.ava`), by `CorpusWriter`:

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
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from ..atomic import atomic_path, atomic_write
from ..errors import SyncASDError
from ..timebase import SAMPLES_PER_FRAME
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


class _NpyAppender:
    """An .npy file written block by block; the header gets the final length at the end."""

    def __init__(self, path: Path, dtype: type, row_shape: tuple[int, ...]) -> None:
        self.file = open(path, "wb")
        self.dtype, self.row_shape, self.rows = np.dtype(dtype), row_shape, 0
        self._header()
        self.data_at = self.file.tell()

    def _header(self) -> None:
        shape = (self.rows, *self.row_shape)
        descr = np.lib.format.dtype_to_descr(self.dtype)
        header = {"descr": descr, "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(self.file, header)

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, self.dtype)
        if block.shape[1:] != self.row_shape:
            raise ValueError(f"rows of shape {block.shape[1:]}, expected {self.row_shape}")
        block.tofile(self.file)
        self.rows += len(block)

    def finish(self) -> None:
        self.file.seek(0)
        self._header()
        # numpy pads the header so that the first axis can grow in place (numpy.lib.format).
        if self.file.tell() != self.data_at:
            raise RuntimeError(f"{self.file.name}: the .npy header changed length")


class CorpusWriter:
    """Writes a corpus one track at a time, straight to disk: the crops of a large set (AVA's
    train split is tens of GB) never sit in memory. Use as a context manager; the files appear
    only when the block succeeds (index.json last, so its presence means a complete corpus).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.entries: list[dict] = []
        self.skipped: list[dict[str, str]] = []
        self._stack = ExitStack()
        self._arrays: dict[str, _NpyAppender] = {}
        layout = (("crops", np.uint8, (112, 112)), ("audio", np.int16, ()), ("labels", bool, ()))
        try:
            for name, dtype, row in layout:
                tmp = self._stack.enter_context(atomic_path(self.root / f"{name}.npy"))
                self._arrays[name] = _NpyAppender(tmp, dtype, row)
                self._stack.callback(self._arrays[name].file.close)
        except BaseException:
            self._stack.close()
            raise

    def add(
        self,
        track: LabelledTrack,
        *,
        identity: str,
        split: str,
        source: str,
        sha256: str,
        negative: bool,
    ) -> None:
        """Append one track (its crops, audio and labels) under the given identity and split."""
        n = len(track)
        if track.crops.shape[0] != n or track.audio.shape != (n * SAMPLES_PER_FRAME,):
            raise ValueError(f"{source}: crops, audio and labels of different lengths")
        offset = self._arrays["labels"].rows
        self._arrays["crops"].append(track.crops)
        self._arrays["audio"].append(track.audio)
        self._arrays["labels"].append(track.labels)
        entry = CorpusTrack(track.video_id, identity, split, source, sha256, offset, n, negative)
        self.entries.append(asdict(entry))

    def skip(self, source: str, error: str) -> None:
        """List a source left out (in the index under "skipped")."""
        self.skipped.append({"source": source, "error": error})

    def __enter__(self) -> CorpusWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            if error is None:
                for array in self._arrays.values():
                    array.finish()
        except BaseException as e:
            kind, error, trace = type(e), e, e.__traceback__
            raise
        finally:  # on an error the temporary files are removed and nothing appears
            self._stack.__exit__(kind, error, trace)
        if error is not None:
            return
        with atomic_write(self.root / "index.json") as f:
            index = {"version": CORPUS_VERSION, "tracks": self.entries, "skipped": self.skipped}
            json.dump(index, f)


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
    if detector is None:
        detector = Detector(keep_crops=True, allow_silent=True)
    with CorpusWriter(root) as writer:
        for clip in tqdm(list(clips), desc="tracks", disable=not progress):
            clip = Path(clip)
            name = split.split_of(clip)
            if name is None:
                continue
            negative = split.is_negative(clip)
            try:
                found = tracks_from_clips([clip], negative=negative, detector=detector)
            except SyncASDError as e:
                log.warning("skipped %s", e)
                writer.skip(str(clip), str(e))
                continue
            if not found:
                writer.skip(str(clip), "no face track")
                continue
            writer.add(
                found[0],
                identity=identity_of(clip),
                split=name,
                source=str(clip),
                sha256=sha256_file(clip),
                negative=negative,
            )
        if not writer.entries:
            raise SyncASDError("no usable face track in the clips given")
    if writer.skipped:
        log.warning(
            "%d of %d clips skipped (see %s)", len(writer.skipped), len(clips), root / "index.json"
        )
    return Corpus(root)


def corpus_key(clips: Sequence[str | Path], split_file: str | Path) -> str:
    """A short name for the corpus of these clips under this split (paths and split content)."""
    h = hashlib.sha256(Path(split_file).read_bytes())
    for clip in sorted(map(str, clips)):
        h.update(clip.encode())
    return h.hexdigest()[:16]
