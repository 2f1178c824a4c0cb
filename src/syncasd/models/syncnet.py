"""SyncNet v2 (Chung & Zisserman, "Out of time", ACCV-W 2016): an audio-visual sync model.

A reimplementation of joonson/syncnet_python's `SyncNetModel.S(num_layers_in_fc_layers=1024)`
and of the offset search in its `SyncNetInstance.evaluate`. It is a **sync** model, not an
active speaker detector: it embeds 5-frame face windows and 20-row MFCC windows (0.2 s each)
into a shared 1024-d space where in-sync pairs are close, and the audio-visual offset of a
track is the shift that minimises the mean distance. The module tree keeps the original
state-dict keys (`netcnnaud.*`, `netfcaud.*`, `netcnnlip.*`, `netfclip.*`, no prefix), so the
published `syncnet_v2.model` loads with `load_state_dict(strict=True)`.

Inputs, as the original feeds them:
* video: full 224×224 face crops at 25 fps, **BGR** channel order as `cv2.imread` returns them,
  float 0–255, no normalisation; window i is frames i..i+4 → (3, 5, 224, 224).
* audio: python_speech_features' default MFCC (13 coefficients, 100 rows/s) on 16 kHz int16
  samples; window i is rows 4i..4i+19, transposed → (1, 13, 20).
* `min(#frames, #samples // 640) − 5` windows: one fewer than would fit, as in the original.

Sign convention (syncnet_python's, kept): `dists[i, j]` is the distance between lip window i
and audio window `i + j − vshift`, and `offset = vshift − argmin_j mean_i dists[i, j]`. So the
audio that best matches lip window i is audio window `i − offset`:
* offset > 0: the sound comes `offset` frames *before* the lip movement (audio leads video);
  delay the audio by offset/25 s to fix it.
* offset < 0: the sound comes after the lips (audio lags video); offset = −(audio delay).
Checked against the official `calc_pdist` output (`fixtures/syncnet`) and with embeddings whose
audio is delayed by a known number of frames (tests/models/test_syncnet.py).

Confidence is `median(mean distances) − min(mean distances)` over the 2·vshift+1 shifts; the
framewise confidence is the median minus each window's distance at the best shift, median
filtered with kernel 9 (scipy's `medfilt`, zero-padded at the ends, as the original).

Licence: syncnet_python is MIT-licensed (Joon Son Chung); this is our own code written from its
architecture description, and the weights are not bundled (VGG distributes `syncnet_v2.model`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..timebase import ROWS_PER_FRAME, SAMPLES_PER_FRAME

FRAMES_PER_WINDOW = 5
MFCC_ROWS_PER_WINDOW = 20
DEFAULT_VSHIFT = 15  # ±15 frames (±0.6 s), demo_syncnet.py's default
DEFAULT_BATCH_SIZE = 20
FRAMEWISE_KERNEL = 9


def _conv_bn_relu(conv: nn.Module, bn: nn.Module) -> list[nn.Module]:
    return [conv, bn, nn.ReLU(inplace=True)]


class SyncNetV2(nn.Module):
    """The two SyncNet v2 encoders: `forward_lip` (video windows) and `forward_aud` (MFCC).

    Sequential indices must stay as they are: they are the checkpoint's key names (pooling
    and ReLU layers take index slots too, including a 1×1 max-pool that does nothing).
    """

    def __init__(self, embed_dim: int = 1024) -> None:
        super().__init__()
        self.netcnnaud = nn.Sequential(
            *_conv_bn_relu(nn.Conv2d(1, 64, 3, padding=1), nn.BatchNorm2d(64)),
            nn.MaxPool2d(kernel_size=1, stride=1),
            *_conv_bn_relu(nn.Conv2d(64, 192, 3, padding=1), nn.BatchNorm2d(192)),
            nn.MaxPool2d(kernel_size=3, stride=(1, 2)),
            *_conv_bn_relu(nn.Conv2d(192, 384, 3, padding=1), nn.BatchNorm2d(384)),
            *_conv_bn_relu(nn.Conv2d(384, 256, 3, padding=1), nn.BatchNorm2d(256)),
            *_conv_bn_relu(nn.Conv2d(256, 256, 3, padding=1), nn.BatchNorm2d(256)),
            nn.MaxPool2d(kernel_size=3, stride=2),
            # (13, 20) has become (5, 4) here: this conv collapses it to 1×1.
            *_conv_bn_relu(nn.Conv2d(256, 512, (5, 4)), nn.BatchNorm2d(512)),
        )
        self.netfcaud = self._fc(embed_dim)
        self.netfclip = self._fc(embed_dim)
        self.netcnnlip = nn.Sequential(
            *_conv_bn_relu(nn.Conv3d(3, 96, (5, 7, 7), stride=(1, 2, 2)), nn.BatchNorm3d(96)),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            *_conv_bn_relu(
                nn.Conv3d(96, 256, (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)),
                nn.BatchNorm3d(256),
            ),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            *_conv_bn_relu(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256)),
            *_conv_bn_relu(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256)),
            *_conv_bn_relu(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256)),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            # 224×224 has become 6×6 here and the 5 frames 1: one 512-d vector per window.
            *_conv_bn_relu(nn.Conv3d(256, 512, (1, 6, 6)), nn.BatchNorm3d(512)),
        )

    @staticmethod
    def _fc(embed_dim: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embed_dim)
        )

    def forward_aud(self, mfcc_windows: torch.Tensor) -> torch.Tensor:
        """(B, 1, 13, 20) MFCC windows → (B, embed_dim) audio embeddings."""
        return self.netfcaud(self.netcnnaud(mfcc_windows).flatten(1))

    def forward_lip(self, frame_windows: torch.Tensor) -> torch.Tensor:
        """(B, 3, 5, 224, 224) BGR 0–255 frame windows → (B, embed_dim) lip embeddings."""
        return self.netfclip(self.netcnnlip(frame_windows).flatten(1))

    # Our naming, for code that reads better without the original's abbreviations.
    audio_embeddings = forward_aud
    visual_embeddings = forward_lip

    def forward(
        self, frame_windows: torch.Tensor, mfcc_windows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both embeddings: (lip, audio), each (B, embed_dim)."""
        return self.forward_lip(frame_windows), self.forward_aud(mfcc_windows)

    @torch.no_grad()
    def embed(
        self,
        frames: np.ndarray,
        mfcc: np.ndarray,
        n_windows: int,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Lip and audio embeddings of windows 0..n_windows−1, (n_windows, embed_dim) each.

        `frames`: (T, H, W, 3) uint8 BGR; `mfcc`: (rows, 13) at 100 rows/s; `n_windows`:
        `window_count(T, #samples)` for the original's count (it needs the sample count, which
        the MFCC row count does not determine). Windows are built a batch at a time: all 246
        windows of a 10 s clip at once would be 740 MB of float32.
        """
        device = next(self.parameters()).device
        lips, auds = [], []
        for start in range(0, n_windows, batch_size):
            starts = range(start, min(n_windows, start + batch_size))
            lips.append(self.forward_lip(video_windows(frames, starts).to(device)).cpu())
            auds.append(self.forward_aud(mfcc_windows(mfcc, starts).to(device)).cpu())
        if not lips:
            return torch.zeros(0, self.netfclip[-1].out_features), torch.zeros(
                0, self.netfcaud[-1].out_features
            )
        return torch.cat(lips), torch.cat(auds)


def window_count(n_frames: int, n_samples: int) -> int:
    """Number of windows the original evaluates: min(frames, samples // 640) − 5, at least 0.

    One fewer than would fit (the last full window, frames n−5..n−1, is never used).
    """
    return max(0, min(n_frames, n_samples // SAMPLES_PER_FRAME) - FRAMES_PER_WINDOW)


def video_windows(frames: np.ndarray, starts: Sequence[int], clamp: bool = False) -> torch.Tensor:
    """5-frame windows (B, 3, 5, H, W) float32 0–255 from (T, H, W, 3) uint8 frames.

    Channels stay in the frames' order: syncnet_python stacks `cv2.imread` output, so the
    network was trained on B, G, R. Pass BGR frames. `clamp`: a window reaching past either
    end repeats the first or last frame (one window per frame) instead of being refused.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3) BGR, got {frames.shape}")
    starts = list(starts)
    index = np.asarray(starts, dtype=np.int64)[:, None] + np.arange(FRAMES_PER_WINDOW)
    if clamp:
        index = np.clip(index, 0, len(frames) - 1)
    elif starts and (min(starts) < 0 or max(starts) + FRAMES_PER_WINDOW > len(frames)):
        raise ValueError(f"a window runs past the {len(frames)} frames")
    windows = frames[index.reshape(-1)].reshape(len(starts), FRAMES_PER_WINDOW, *frames.shape[1:])
    # (B, 5, H, W, C) → (B, C, 5, H, W); uint8 → float32 is exact, as the original's via float64.
    return torch.from_numpy(np.ascontiguousarray(windows.transpose(0, 4, 1, 2, 3))).float()


def mfcc_windows(mfcc: np.ndarray, starts: Sequence[int]) -> torch.Tensor:
    """20-row MFCC windows (B, 1, 13, 20) float32 from (rows, 13) MFCCs: rows 4i..4i+19."""
    mfcc = np.asarray(mfcc)
    if mfcc.ndim != 2 or mfcc.shape[1] != 13:
        raise ValueError(f"mfcc must be (rows, 13), got {mfcc.shape}")
    starts = list(starts)
    last = max(starts, default=0) * ROWS_PER_FRAME + MFCC_ROWS_PER_WINDOW
    if starts and (min(starts) < 0 or last > len(mfcc)):
        raise ValueError(f"a window runs past the {len(mfcc)} MFCC rows")
    index = np.asarray(starts, dtype=np.int64)[:, None] * ROWS_PER_FRAME + np.arange(
        MFCC_ROWS_PER_WINDOW
    )
    windows = mfcc[index].transpose(0, 2, 1)[:, None]  # (B, 1, 13, 20)
    # float64 → float32 once, as the original's `.float()` on the whole matrix.
    return torch.from_numpy(np.ascontiguousarray(windows)).float()


def distance_matrix(
    lip: torch.Tensor, aud: torch.Tensor, vshift: int = DEFAULT_VSHIFT
) -> torch.Tensor:
    """(N, 2·vshift+1) distances: [i, j] = ‖lip[i] − aud[i + j − vshift] + 1e-6‖₂.

    syncnet_python's `calc_pdist`, vectorised: audio outside the track counts as a zero
    embedding (it pads with zeros), and the 1e-6 is `pairwise_distance`'s eps.
    """
    if lip.shape != aud.shape or lip.ndim != 2:
        raise ValueError(f"lip {tuple(lip.shape)} and aud {tuple(aud.shape)} must be equal (N, D)")
    width = 2 * vshift + 1
    padded = F.pad(aud, (0, 0, vshift, vshift))
    shifted = padded.unfold(0, width, 1).transpose(1, 2)  # (N, width, D), a view
    return F.pairwise_distance(lip[:, None, :].expand_as(shifted), shifted)


@dataclass(frozen=True)
class SyncResult:
    """What `SyncNetInstance.evaluate` computes from the distance matrix."""

    offset: int  # frames; > 0: audio leads video, < 0: audio lags (module docstring)
    min_dist: float  # smallest mean distance ("Min dist")
    confidence: float  # median − min of the mean distances ("Confidence")
    min_index: int  # argmin shift index, 0..2·vshift
    mean_dists: np.ndarray  # (2·vshift+1,) mean distance per shift ("mdist")
    framewise_dist: np.ndarray  # (N,) each window's distance at the best shift ("fdist")
    framewise_conf_raw: np.ndarray  # (N,) median − framewise_dist ("fconf")
    framewise_conf: np.ndarray  # (N,) median filtered ("fconfm", printed "Framewise conf")


def offset_and_confidence(
    dists: torch.Tensor | np.ndarray,
    vshift: int = DEFAULT_VSHIFT,
    kernel_size: int = FRAMEWISE_KERNEL,
) -> SyncResult:
    """Offset, min distance, confidence and framewise confidence from `distance_matrix`."""
    dists = torch.as_tensor(dists)
    if dists.ndim != 2 or dists.shape[1] != 2 * vshift + 1 or len(dists) == 0:
        raise ValueError(f"dists must be (N > 0, {2 * vshift + 1}), got {tuple(dists.shape)}")
    mean_dists = dists.mean(0)
    min_index = int(torch.argmin(mean_dists))
    min_dist = mean_dists[min_index]
    median = torch.median(mean_dists)  # 2·vshift+1 values: the middle one
    framewise_dist = dists[:, min_index]
    raw = (median - framewise_dist).numpy()
    from scipy.signal import medfilt  # here: scipy.signal takes a second to import

    return SyncResult(
        offset=vshift - min_index,
        min_dist=float(min_dist),
        confidence=float(median - min_dist),
        min_index=min_index,
        mean_dists=mean_dists.numpy(),
        framewise_dist=framewise_dist.numpy(),
        framewise_conf_raw=raw,
        framewise_conf=medfilt(raw, kernel_size=kernel_size),
    )


def sync_offset(
    model: SyncNetV2,
    frames: np.ndarray,
    audio: np.ndarray,
    vshift: int = DEFAULT_VSHIFT,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> SyncResult:
    """`SyncNetInstance.evaluate` on arrays: (T, 224, 224, 3) uint8 BGR frames at 25 fps and
    16 kHz mono int16 samples → offset and confidences."""
    from ..audio import mfcc as compute_mfcc  # python_speech_features defaults, as the original

    n_windows = window_count(len(frames), len(audio))
    if n_windows == 0:
        raise ValueError(
            f"too short for SyncNet: {len(frames)} frames, {len(audio)} samples "
            f"(needs at least {FRAMES_PER_WINDOW + 1} frames of both)"
        )
    lip, aud = model.embed(frames, compute_mfcc(audio), n_windows, batch_size)
    return offset_and_confidence(distance_matrix(lip, aud, vshift), vshift)
