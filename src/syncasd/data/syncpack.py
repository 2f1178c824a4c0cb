"""A sync pack: the IC-SyncNet training material of a corpus, small enough to carry and to
hold on a GPU, and a batch sampler that runs there.

A corpus keeps 112 × 112 face crops and 16 kHz samples (2.1 GB for ../shared/data); a sync-net
reads only mouths and log-mel. The pack keeps, for every speaking track of the chosen splits,

- `mouths`: the mouth of every frame (`icsyncnet.mouth_crops`, gray, the model's size), saved as
  one H.264 stream (`mouths.mp4`, CRF 18, full-range YUV: ≈ 165 bytes a frame, mean error
  1.4 grey levels) that both PyAV and OpenCV decode;
- `mel`: the track's `log_mel` with `PAD_FRAMES` of digital silence on each side, exactly the
  spectrogram `offsets.ICSyncOffsets` scores (so validation on the pack is the sync-accuracy
  protocol), quantised to 8 bits over its [−4, 4] range (step 0.031) and stored as its steps
  from column to column (mod 256, lossless: 23.2 MB compressed for ../shared/data against
  27.4 MB for the values, which brings the pack with the repository under the 64 MiB a GPU
  machine is lent with);
- `labels` and a table of where each track's frames and columns start.

`PackSampler` then cuts training batches with tensor indexing on the pack's device: no worker
processes, no per-sample Python, which is what lets a GPU run thousands of batches a minute.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..atomic import atomic_path
from ..audio import MEL_CONTEXT, MEL_SILENCE, MEL_WINDOW_COLUMNS, log_mel, mel_window_start
from ..errors import InputError
from ..models.icsyncnet import HALF, IMAGES, ICSyncNetDims, mouth_crops
from .syncpairs import SyncSampleConfig, window_centres

PAD_FRAMES = 20  # silence around each track's audio: ICSyncOffsets(max_offset=15).pad
SPLITS = ("train", "val", "test")
_MEL_RANGE = 8.0  # log-mel values lie in [MEL_SILENCE, MEL_SILENCE + 8] = [−4, 4]
_DB_PER_UNIT = 12.5  # dB per unit of the normalised log-mel (100 dB over 8 units)


def quantise_mel(mel: np.ndarray) -> np.ndarray:
    """Normalised log-mel (float, [−4, 4]) → uint8, 255 steps over the range."""
    return (
        np.round((np.asarray(mel) - MEL_SILENCE) * (255 / _MEL_RANGE)).clip(0, 255).astype(np.uint8)
    )


def dequantise_mel(mel: torch.Tensor) -> torch.Tensor:
    """uint8 → normalised log-mel (float32)."""
    return mel.float() * (_MEL_RANGE / 255) + MEL_SILENCE


def mel_steps(mel: np.ndarray) -> np.ndarray:
    """(80, M) uint8 → the step from each column to the next, mod 256 (the first from 0)."""
    return np.diff(mel, axis=1, prepend=np.zeros((len(mel), 1), np.uint8))


def mel_from_steps(steps: np.ndarray) -> np.ndarray:
    """The inverse of `mel_steps`: a running sum mod 256."""
    return np.cumsum(steps, axis=1, dtype=np.uint8)


@dataclass
class SyncPack:
    mouths: np.ndarray  # (N, H, W) uint8: every frame of every packed track, track after track
    labels: np.ndarray  # (N,) bool: speaking
    mel: np.ndarray  # (80, M) uint8: each track's padded log-mel, track after track
    tracks: np.ndarray  # (n, 5) int64: first_frame, frames, first_column, columns, split index
    video_ids: list[str]
    pad: int = PAD_FRAMES

    def split(self, name: str) -> np.ndarray:
        """Row numbers of the tracks of one split."""
        return np.flatnonzero(self.tracks[:, 4] == SPLITS.index(name))

    def save(self, folder: str | Path) -> Path:
        """`mouths.mp4` + `pack.npz` + `pack.json` in `folder`, each written whole or not at all."""
        import av

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        height, width = self.mouths.shape[1:]
        with atomic_path(folder / "mouths.mp4") as tmp:
            with av.open(str(tmp), "w", format="mp4") as out:
                stream = out.add_stream("libx264", rate=25)
                # Full-range YUV: a "gray" stream is stored limited-range and comes back from
                # OpenCV and PyAV stretched by 255/219 (a mean error of 6 grey levels, not 1.4).
                stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p"
                stream.options = {"crf": "18", "preset": "slow"}
                for image in self.mouths:
                    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="gray")
                    out.mux(stream.encode(frame))
                out.mux(stream.encode())
        with atomic_path(folder / "pack.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(
                    f, labels=self.labels, mel_steps=mel_steps(self.mel), tracks=self.tracks
                )
        meta = {
            "version": 2,
            "pad": self.pad,
            "frames": len(self.mouths),
            "video_ids": self.video_ids,
        }
        with atomic_path(folder / "pack.json") as tmp:
            tmp.write_text(json.dumps(meta))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> SyncPack:
        """Read a saved pack (OpenCV decodes the mouths: no PyAV needed, e.g. on a GPU box)."""
        import cv2

        folder = Path(folder)
        try:
            meta = json.loads((folder / "pack.json").read_text())
            arrays = np.load(folder / "pack.npz")
        except (OSError, ValueError) as e:
            raise InputError(f"{folder}: not a sync pack ({e})") from None
        # Decoded into one array: a list of OpenCV's 3-channel frames would hold 3× the pack.
        frames, decoded = meta["frames"], 0
        mouths = None
        capture = cv2.VideoCapture(str(folder / "mouths.mp4"))
        while decoded <= frames:
            ok, image = capture.read()
            if not ok:
                break
            if mouths is None:
                mouths = np.empty((frames, *image.shape[:2]), np.uint8)
            if decoded < frames:
                mouths[decoded] = image[:, :, 0]
            decoded += 1
        capture.release()
        if decoded != frames:
            raise InputError(
                f"{folder}/mouths.mp4: {decoded}{'+' if decoded > frames else ''} frames "
                f"decoded, the pack has {frames}"
            )
        return cls(
            mouths,
            arrays["labels"],
            # Version 1 packs stored the values themselves.
            arrays["mel"] if "mel" in arrays else mel_from_steps(arrays["mel_steps"]),
            arrays["tracks"],
            meta["video_ids"],
            meta["pad"],
        )


def build_sync_pack(
    corpus,
    dims: ICSyncNetDims,
    splits: tuple[str, ...] = ("train", "val"),
    progress: bool = False,
) -> SyncPack:
    """The pack of a corpus's speaking tracks (negatives and tracks shorter than one window
    are left out) of the given splits."""
    from tqdm import tqdm

    from ..offsets import with_silence

    mouths, labels, mels, rows, names = [], [], [], [], []
    frame, column = 0, 0
    ids = [i for s in splits for i in corpus.split(s)]
    for i in tqdm(ids, desc="sync pack", disable=not progress):
        entry = corpus.tracks[i]
        if entry.negative or entry.length < IMAGES:
            continue
        track = corpus.track(i)
        mouths.append(mouth_crops(np.asarray(track.crops), dims)[:, 0])
        labels.append(np.asarray(track.labels, bool))
        mel = quantise_mel(log_mel(with_silence(np.asarray(track.audio), PAD_FRAMES, PAD_FRAMES)))
        mels.append(mel)
        rows.append((frame, entry.length, column, mel.shape[1], SPLITS.index(entry.split)))
        names.append(entry.video_id)
        frame += entry.length
        column += mel.shape[1]
    if not rows:
        raise InputError(f"no speaking track in the {', '.join(splits)} split(s) of the corpus")
    return SyncPack(
        np.concatenate(mouths),
        np.concatenate(labels),
        np.concatenate(mels, axis=1),
        np.asarray(rows, np.int64),
        names,
    )


def mel_windows(mel: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """The dequantised 32-column windows of a pack's (80, M) uint8 `mel` that start at
    `columns` (any shape S): (*S, 80, 32)."""
    cols = columns[..., None] + torch.arange(MEL_WINDOW_COLUMNS, device=columns.device)
    return dequantise_mel(mel[:, cols]).movedim(0, -2)


@dataclass
class AudioTable:
    """A frozen audio encoder's embedding of every five-image window of some pack rows:
    `embeddings[first[row] + s]` is row's window starting at frame s of its padded track
    (s = 0 … n + 2·pad − 5, a superset of the starts `PackSampler` cuts); `first` is −1 for
    other rows."""

    embeddings: torch.Tensor  # (N, D) float32
    first: torch.Tensor  # (rows of pack.tracks,) int64

    def to(self, device: torch.device | str) -> AudioTable:
        return AudioTable(self.embeddings.to(device), self.first.to(device))


@torch.no_grad()
def audio_embedding_table(
    model, pack: SyncPack, split: str = "train", batch_size: int = 1024
) -> AudioTable:
    """`model`'s audio embeddings (eval mode for the while) of every window of a split, on the
    model's device: computed once, they stand in for a frozen audio encoder in training."""
    device = model.log_temperature.device
    rows = pack.split(split)
    first = np.full(len(pack.tracks), -1, np.int64)
    columns, total = [], 0
    for row in rows:
        _first, n, column, count, _split = pack.tracks[row]
        starts = np.arange(n + 2 * pack.pad - IMAGES + 1)
        first[row] = total
        total += len(starts)
        # Kept inside the track's spectrogram: the few windows at its very ends that reach
        # past it lie beyond every offset `PackSampler` cuts.
        columns.append(column + mel_window_start(starts).clip(0, count - MEL_WINDOW_COLUMNS))
    columns = torch.from_numpy(np.concatenate(columns)).to(device)
    mel = torch.from_numpy(pack.mel).to(device)
    was = model.training
    model.eval()
    try:
        parts = []
        for chunk in columns.split(batch_size):
            parts.append(model.audio_embeddings(mel_windows(mel, chunk)).float())
    finally:
        model.train(was)
    return AudioTable(torch.cat(parts), torch.from_numpy(first).to(device))


class PackSampler:
    """Training batches of a split of a pack, cut on `device`, in the layout of
    `syncpairs.SyncBatchMaker`: "mouths" (B, 5, H, W) and "mel" (B, 1 + hard, 80, 32), the
    positive (offset 0) window first, then `hard` distinct offsets min_shift … max_shift frames
    away whose five frames lie inside the track (silence-padded ones only where a track is too
    short to offer enough).

    Augmentation, per sample, all five images alike: with `flip_prob` a small random affine
    (±5°, ±5 % scale, ±4 % shift; mirrored half of the time); with `lift_prob` the content
    moved up by `lift_rows` rows (a face tilted up or down); always brightness (±20 grey
    levels) and contrast (±20 %). Audio: a gain of `gain_db` on the log-mel and, with
    `white_noise_prob`, a flat noise floor `white_snr_db` under the window's loudest bin (added
    as power in each mel bin).

    With `audio_table` (`audio_embedding_table`: a frozen audio encoder's embedding of every
    window of the split), a batch holds "audio" (B, 1 + hard, D), those embeddings, instead of
    "mel": the audio encoder, most of a step's cost, does not run at all (and the audio
    augmentation does not apply; `syncasd train` asks for it off).
    """

    def __init__(
        self,
        pack: SyncPack,
        split: str,
        config: SyncSampleConfig,
        device: torch.device | str = "cpu",
        audio_table: AudioTable | None = None,
    ) -> None:
        if config.pink_noise_prob:  # the pack holds log-mel, not waveforms to mix noise into
            raise InputError("samples.pink_noise_prob is not available with a sync pack")
        self.config, self.device, self.pad = config, torch.device(device), pack.pad
        rows = pack.tracks[pack.split(split)]
        centres, owners = [], []
        for row, (first, n, *_rest) in zip(pack.split(split), rows, strict=True):
            local = window_centres(pack.labels[first : first + n])
            centres.append(local)
            owners.append(np.full(len(local), row))
        if not centres or sum(len(c) for c in centres) < config.batch:
            raise InputError(
                f"the {split} split of the pack has fewer speaking windows than a batch"
            )
        self.local = torch.from_numpy(np.concatenate(centres)).to(self.device)
        self.owner = torch.from_numpy(np.concatenate(owners)).to(self.device)
        self.tracks = torch.from_numpy(pack.tracks).to(self.device)
        self.mouths = torch.from_numpy(pack.mouths).to(self.device)
        self.mel = torch.from_numpy(pack.mel).to(self.device)
        shifts = np.arange(-config.max_shift, config.max_shift + 1)
        shifts = shifts[np.abs(shifts) >= config.min_shift]
        if len(shifts) < config.hard:
            raise InputError("fewer hard-negative offsets than hard negatives per sample")
        self.shifts = torch.from_numpy(shifts).to(self.device)
        self.audio_table = None if audio_table is None else audio_table.to(self.device)

    def __len__(self) -> int:
        """Speaking windows in the split."""
        return len(self.local)

    def __call__(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        c, dev = self.config, self.device

        def uniform(*shape: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
            return torch.rand(*shape, generator=generator, device=dev) * (high - low) + low

        b = c.batch
        pick = torch.randint(len(self.local), (b,), generator=generator, device=dev)
        pick_rows = self.owner[pick]
        local, track = self.local[pick], self.tracks[pick_rows]
        first, n = track[:, 0], track[:, 1]
        around = torch.arange(-HALF, HALF + 1, device=dev)
        mouths = self.mouths[(first + local)[:, None] + around].float()  # (B, 5, H, W)
        mouths = self._augment_images(mouths, uniform)

        # Hard offsets: a random order of the candidates, those whose five frames lie inside
        # the track first.
        k = self.shifts[None, :]
        inside = (local[:, None] - HALF + k >= 0) & (local[:, None] + HALF + k < n[:, None])
        order = (uniform(b, len(self.shifts)) + (~inside).float()).argsort(dim=1)
        hard = self.shifts[order[:, : c.hard]]
        offsets = torch.cat([torch.zeros(b, 1, dtype=hard.dtype, device=dev), hard], dim=1)
        # audio.mel_window_start of the images starting at frame local − 2 + k of the padded
        # track: floor(3.2·s) − 8, in integers.
        start = local[:, None] - HALF + offsets + self.pad
        if self.audio_table is not None:
            rows = self.audio_table.first[pick_rows, None] + start
            return {"mouths": mouths, "audio": self.audio_table.embeddings[rows]}
        column = track[:, 2:3] + torch.div(16 * start, 5, rounding_mode="floor") - MEL_CONTEXT
        mel = mel_windows(self.mel, column)  # (B, 1 + h, 80, 32)
        return {"mouths": mouths, "mel": self._augment_audio(mel, uniform)}

    def _augment_images(self, mouths: torch.Tensor, uniform) -> torch.Tensor:
        c = self.config
        b = len(mouths)
        warp = uniform(b) < c.flip_prob
        flip = warp & (uniform(b) < 0.5)
        mouths = torch.where(flip[:, None, None, None], mouths.flip(-1), mouths)
        angle = uniform(b, low=-5, high=5) * (math.pi / 180) * warp
        scale = 1 + uniform(b, low=-0.05, high=0.05) * warp
        shift = uniform(b, 2, low=-0.08, high=0.08) * warp[:, None]  # of the half-size [−1, 1]
        if c.lift_prob:  # (drawn only when asked: the other recipes' batches stay as they were)
            # Sampling rows lower down moves the content up: `lift` rows are 2·lift / H of [−1, 1].
            lift = uniform(b, low=c.lift_rows[0], high=c.lift_rows[1]) * (uniform(b) < c.lift_prob)
            shift = shift + torch.stack([torch.zeros_like(lift), 2 * lift / mouths.shape[2]], 1)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
        )
        grid = F.affine_grid(theta, list(mouths.shape), align_corners=False)
        mouths = F.grid_sample(mouths, grid, padding_mode="border", align_corners=False)
        contrast = uniform(b, 1, 1, 1, low=0.8, high=1.2)
        brightness = uniform(b, 1, 1, 1, low=-20, high=20)
        mean = mouths.mean(dim=(1, 2, 3), keepdim=True)
        return ((mouths - mean) * contrast + mean + brightness).clamp(0, 255)

    def _augment_audio(self, mel: torch.Tensor, uniform) -> torch.Tensor:
        c = self.config
        b = len(mel)
        # Gain moves every bin above the floor; digital silence stays silent.
        gain = uniform(b, 1, 1, 1, low=c.gain_db[0], high=c.gain_db[1]) / _DB_PER_UNIT
        mel = torch.where(mel > MEL_SILENCE, mel + gain, mel).clamp(MEL_SILENCE, -MEL_SILENCE)
        # A noise floor: power sum in dB of each bin and the floor, SNR below the window's peak.
        noisy = uniform(b, 1, 1, 1) < c.white_noise_prob
        snr = uniform(b, 1, 1, 1, low=c.white_snr_db[0], high=c.white_snr_db[1]) / _DB_PER_UNIT
        floor = mel.amax(dim=(1, 2, 3), keepdim=True) - snr
        unit = 10 / _DB_PER_UNIT  # 10·log10 in normalised units
        mixed = unit * torch.logaddexp(mel / unit * math.log(10), floor / unit * math.log(10))
        mixed = mixed / math.log(10)
        return torch.where(noisy, mixed.clamp(MEL_SILENCE, -MEL_SILENCE), mel)


@torch.no_grad()
def pack_matrices(
    model, pack: SyncPack, split: str = "val", max_offset: int = 15, batch_size: int = 256
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(pack row, matrix, valid frames) of every track of a split long enough for ±K: what
    `evaluate.syncacc.track_matrices` gives with `ICSyncOffsets` (frames K … T−K−1 against the
    track's padded spectrogram), on the model's device and in its current mode."""
    if pack.pad < max_offset + 3:
        raise InputError(f"the pack pads {pack.pad} frames; ±{max_offset} needs {max_offset + 3}")
    device = model.log_temperature.device
    for row in pack.split(split):
        first, n, column, columns, _ = pack.tracks[row]
        if n <= 2 * max_offset:
            continue
        lo, hi = first + max_offset, first + n - max_offset
        mouths = torch.from_numpy(pack.mouths[lo:hi])[:, None].to(device)
        mel = dequantise_mel(torch.from_numpy(pack.mel[:, column : column + columns]).to(device))
        probs = model.offset_probabilities(
            mouths, mel, max_offset, batch_size, lead=max_offset + pack.pad
        )
        yield int(row), probs.float().cpu().numpy(), pack.labels[lo:hi]


def pack_sync_accuracy(
    model, pack: SyncPack, split: str = "val", clip_lengths: tuple[int, ...] = (5, 11)
):
    """The sync-accuracy protocol (±15 frames, correct within ±1) on a split of the pack, the
    model in eval mode for the while."""
    from ..evaluate.syncacc import sync_accuracy

    was = model.training
    model.eval()
    try:
        scored = list(pack_matrices(model, pack, split))
    finally:
        model.train(was)
    if not scored:
        raise InputError(f"no {split} track of the pack is long enough for ±15 frames")
    return sync_accuracy(
        [m for _, m, _ in scored],
        [v for _, _, v in scored],
        clip_lengths,
        window=IMAGES,
        model="ic-syncnet",
    )


__all__ = [
    "PAD_FRAMES",
    "AudioTable",
    "PackSampler",
    "SyncPack",
    "audio_embedding_table",
    "build_sync_pack",
    "dequantise_mel",
    "pack_matrices",
    "pack_sync_accuracy",
    "quantise_mel",
]
