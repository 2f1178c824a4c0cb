"""Sync backends: one face track → its (2K+1, T) offset × time sync-probability matrix.

`syncmap.py` analyses such a matrix without knowing where it came from; this module makes it,
from an ASD model (`ASDOffsets`), IC-SyncNet (`ICSyncOffsets`) or SyncNet v2 (`SyncNetOffsets`,
which reads 224×224 colour crops: the registry's `ModelSpec.crop` tells the pipeline which).
Row k+K, column t is P(in sync | lips at frame t, audio at frame t+k), for k = -K..K
(k > 0: the audio comes later than the lips, as in `syncmap.py`).

`ASDOffsets` turns any registry ASD model that exposes its parts (`visual_embeddings`,
`audio_embeddings`, `backend_logits`: Light-ASD, LR-ASD, sync-light-asd) into such a backend:
row k is the model's "speaking" probability when the track's audio is replaced by the audio
k frames later. A synchronization-aware ASD model (trained with shifted-audio negatives) says
"speaking" only for the true offset, so its rows peak there; on silence every row is low.

Why it is cheap: the visual embeddings do not depend on the shift, so they are computed once
per window; the MFCC is computed once for the whole (zero-padded) audio and each shift only
slices other rows (4 per frame), so a shift costs the audio encoder and the backend. The
2K+1 shifts run as one batch (`batch` shifts per call, to bound memory).

Why the same windows as `detect`: the encoders' temporal convolutions and the BGRU see a whole
window, so a frame's score depends on where the window starts. Windows here are `detect`'s
(`scoring.ChunkScorer`: 6 s, 1 s of context on each side), so row K is exactly the score
`detect` gives the track with the same torch model (up to float rounding of batched
convolutions; at the last frame of the file `detect` repeats the last MFCC row where this
module reads the zero padding; and with `--duration`, `detect` cuts the audio at the end of the
interval where `syncrun` passes the file's audio on, which the shifted rows need).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np
import torch
from scipy.special import expit
from torch import nn

from .audio import log_mel, mfcc
from .errors import InputError
from .faces.crop import CROP_SIZE
from .models import audio_lag_ms as registry_lag
from .models import get_spec, load_model
from .models.ensemble import SyncPair
from .models.icsyncnet import IMAGES, ICSyncNet, mouth_crops
from .models.light_syncnet import LightSyncNet
from .models.syncnet import (
    FRAMES_PER_WINDOW,
    MFCC_ROWS_PER_WINDOW,
    SyncNetV2,
    mfcc_windows,
    video_windows,
)
from .syncmap import clipped_logit
from .timebase import ROWS_PER_FRAME, SAMPLE_RATE, SAMPLES_PER_FRAME

DEFAULT_MAX_OFFSET = 15  # frames (±600 ms): syncnet_python's default search range
MAX_MAX_OFFSET = 100  # frames (±4 s): beyond this the audio has little to do with the lips
WINDOW = 150  # frames: `detect`'s scoring window (6 s at 25 fps)
CONTEXT = 25  # frames: its context on each side (window // 6)
REQUIRED = ("visual_embeddings", "audio_embeddings", "backend_logits")


class OffsetBackend(Protocol):
    """What `SyncAnalyzer` needs from a sync backend."""

    max_offset: int
    column_images: int  # images each matrix column reads (`eval sync-accuracy`'s window)

    def features(self, audio: np.ndarray) -> np.ndarray:
        """Audio features of a whole 16 kHz int16 signal, computed once per video."""
        ...

    def matrix(self, crops: np.ndarray, features: np.ndarray, first: int) -> np.ndarray:
        """(2K+1, T) sync probabilities of a track of T crops starting at audio frame `first`."""
        ...


def windows(
    n: int, window: int = WINDOW, context: int = CONTEXT
) -> Iterator[tuple[int, int, int, int]]:
    """`ChunkScorer`'s windows over n frames: (a, b, keep, stop) = score frames [a, b) together
    and keep the results for frames [keep, stop).

    Each window but the last is `window` frames long; consecutive windows overlap by
    2·context, and each frame's result comes from the window in which it is not context.
    """
    if window <= 2 * context:
        raise InputError("the scoring window must be longer than twice its context")
    a = done = 0
    while n - a >= window:
        yield a, a + window, done, a + window - context
        done = a + window - context
        a = done - context
    if done < n:
        yield a, n, done, n


def padded_features(audio: np.ndarray, max_offset: int) -> np.ndarray:
    """MFCC of the audio with K frames of digital silence before it and K + 1 after it.

    Row 4·(f + K) is the first row of frame f (frame f covers samples [640f, 640(f+1))). The
    rows inside the audio equal those of `mfcc(audio)` exactly: the padding is a whole number of
    hops, and pre-emphasis sees a zero before the first sample either way.
    """
    return mfcc(with_silence(audio, max_offset, max_offset + 1))


def with_silence(audio: np.ndarray, before: int, after: int) -> np.ndarray:
    """Mono 16 kHz int16 samples with `before` and `after` frames of digital silence around."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise InputError(f"expected mono 16 kHz samples (N,), got shape {audio.shape}")
    return np.concatenate(
        [
            np.zeros(before * SAMPLES_PER_FRAME, np.int16),
            audio.astype(np.int16, copy=False),
            np.zeros(after * SAMPLES_PER_FRAME, np.int16),
        ]
    )


def shifted(x: np.ndarray, k: int) -> np.ndarray:
    """`x` moved k places later (> 0) or earlier (< 0), zero-filled, same length.

    Weights trained on clips whose audio lies late by a constant call footage in sync that
    much early; fed the audio as late, they read offset 0 on it (`Checkpoint.audio_lag_ms`)."""
    x = np.asarray(x)
    out = np.zeros_like(x)
    n = len(x)
    if abs(k) < n:
        if k >= 0:
            out[k:] = x[: n - k]
        else:
            out[: n + k] = x[-k:]
    return out


class _Rows:
    """What every backend shares: its search range K, the offset of each row, and `__call__`
    for one track (`features` once per video and `matrix` per track are the parts)."""

    # Samples by which the audio is delayed before scoring (`shifted`); set per weights by
    # `offset_backend` from the registry's `Checkpoint.audio_lag_ms`.
    audio_delay = 0
    # Images each matrix column reads: 1 for per-frame models, 5 for a window centred on the
    # column's frame. An attribute, not a type test, so that a wrapper that delegates to a
    # backend also reports it.
    column_images = 1

    def __init__(self, max_offset: int) -> None:
        if not 0 <= max_offset <= MAX_MAX_OFFSET:
            raise InputError(f"max offset must be 0..{MAX_MAX_OFFSET} frames, got {max_offset}")
        self.max_offset = int(max_offset)

    def features(self, audio: np.ndarray) -> object:
        """Audio features of a whole 16 kHz int16 signal (delayed by `audio_delay` samples),
        computed once per video."""
        return self._features(shifted(audio, self.audio_delay))

    @property
    def shifts(self) -> np.ndarray:
        """The offset of every row, -K..K (frames; > 0 = audio later than the lips)."""
        return np.arange(-self.max_offset, self.max_offset + 1)

    def __call__(self, crops: np.ndarray, audio: np.ndarray, first: int = 0) -> np.ndarray:
        """(2K+1, T) for one track: T crops at audio frames first..first+T-1 of `audio`
        (16 kHz int16; silence is assumed outside it)."""
        return self.matrix(crops, self.features(audio), first)


def _gray_track(crops: np.ndarray, first: int) -> np.ndarray:
    """The checks every gray-crop backend makes of a track: (T, H, W) crops, T > 0, first ≥ 0."""
    crops = np.asarray(crops)
    if crops.ndim != 3 or len(crops) == 0:
        raise InputError(f"expected face crops (T, H, W) with T > 0, got {crops.shape}")
    if first < 0:
        raise InputError(f"track start {first} lies before the audio")
    return crops


def _softmax1(logits: torch.Tensor) -> torch.Tensor:
    return logits.float().softmax(dim=-1)[..., 1]


class ASDOffsets(_Rows):
    """Sync matrix from an ASD model with separable encoders (Light-ASD, LR-ASD and ours).

    `ASDOffsets(model, max_offset=15)(crops, audio, first)` → (2K+1, T) float32. For many
    tracks of one video compute `features(audio)` once and call `matrix` per track.
    """

    def __init__(
        self,
        model: nn.Module,
        max_offset: int = DEFAULT_MAX_OFFSET,
        window: int = WINDOW,
        context: int = CONTEXT,
        batch: int = 32,
    ) -> None:
        missing = [m for m in REQUIRED if not callable(getattr(model, m, None))]
        if missing:
            raise InputError(
                f"{type(model).__name__} cannot score audio offsets: it has no "
                f"{', '.join(missing)}; use sync-light-asd, light-asd or lr-asd (torch, not ONNX)"
            )
        super().__init__(max_offset)
        if batch < 1:
            raise InputError("the shift batch must be at least 1")
        next(windows(window, window, context))  # validates window and context
        self.model = model.eval()
        self.window, self.context, self.batch = window, context, batch

    def _features(self, audio: np.ndarray) -> np.ndarray:
        """MFCC rows of the whole zero-padded audio (`padded_features`), once per video."""
        return padded_features(audio, self.max_offset)

    def matrix(self, crops: np.ndarray, features: np.ndarray, first: int) -> np.ndarray:
        """(2K+1, T) float32 sync probabilities; `features` from `self.features(audio)`."""
        crops = _gray_track(crops, first)
        k, n = self.max_offset, len(crops)
        out = np.empty((2 * k + 1, n), np.float32)
        device = next(self.model.parameters()).device
        for a, b, keep, stop in windows(n, self.window, self.context):
            with torch.inference_mode():
                video = torch.from_numpy(np.ascontiguousarray(crops[a:b])).float()[None]
                visual = self.model.visual_embeddings(video.to(device))  # (1, b-a, D)
                for j0 in range(0, 2 * k + 1, self.batch):
                    j1 = min(j0 + self.batch, 2 * k + 1)
                    rows = self._shifted_rows(features, first + a, b - a, j0, j1)
                    audio = self.model.audio_embeddings(torch.from_numpy(rows).to(device))
                    logits = self.model.backend_logits(visual.expand(j1 - j0, -1, -1), audio)
                    probs = _softmax1(logits).cpu().numpy()
                    out[j0:j1, keep:stop] = probs[:, keep - a : stop - a]
        return out

    def _shifted_rows(self, features: np.ndarray, start: int, n: int, j0: int, j1: int):
        """(j1-j0, 4n, 13) float32: MFCC rows of frames start+j-K .. start+j-K+n-1 for each
        row j (padded coordinates: frame f starts at row 4·(f+K))."""
        r = ROWS_PER_FRAME
        lo, hi = r * (start + j0), r * (start + j1 - 1 + n)
        span = features[lo:hi]
        if len(span) < hi - lo:
            if len(span) == 0:
                raise InputError(
                    f"the track reaches frame {start - self.max_offset + j1 - 1 + n}, past the "
                    "end of the audio"
                )
            # A track may end in the last, partial frame of the audio: repeat the last row as
            # `detect` does.
            span = np.concatenate([span, np.repeat(span[-1:], hi - lo - len(span), axis=0)])
        view = np.lib.stride_tricks.sliding_window_view(span, (r * n, span.shape[1]))[:, 0]
        return np.ascontiguousarray(view[::r][: j1 - j0], dtype=np.float32)


class ICSyncOffsets(_Rows):
    """Sync matrix from IC-SyncNet: σ(cos / τ) of every five-image mouth window with the
    audio window at every offset (`ICSyncNet.offset_probabilities`), column t = the window
    centred on frame t. Features are the whole video's log-mel, computed once."""

    column_images = IMAGES

    def __init__(
        self, model: nn.Module, max_offset: int = DEFAULT_MAX_OFFSET, batch: int = 64
    ) -> None:
        if not isinstance(model, ICSyncNet):
            raise InputError(f"ICSyncOffsets needs an IC-SyncNet, got {type(model).__name__}")
        super().__init__(max_offset)
        self.model = model.eval()
        self.batch = batch
        # Digital silence before the audio, a multiple of 5 frames (16 mel columns) long.
        self.pad = 5 * -(-(self.max_offset + 3) // 5)

    def _features(self, audio: np.ndarray) -> np.ndarray:
        """log-mel of the whole audio with `pad` frames of silence on each side."""
        return log_mel(with_silence(audio, self.pad, self.pad))

    def matrix(self, crops: np.ndarray, features: np.ndarray, first: int) -> np.ndarray:
        """(2K+1, T) float32 sync probabilities of gray crops (T, 112, 112) at audio frame
        `first`; `features` from `self.features(audio)`."""
        crops = _gray_track(crops, first)
        device = self.model.log_temperature.device
        mouths = torch.from_numpy(mouth_crops(crops, self.model.dims))
        probs = self.model.offset_probabilities(
            mouths,
            torch.from_numpy(features).to(device),
            self.max_offset,
            self.batch,
            lead=first + self.pad,
        )
        return probs.float().cpu().numpy()


class LightSyncOffsets(_Rows):
    """Sync matrix from LightSyncNet (`models/light_syncnet.py`): σ(cos(v_t, a_{t+k}) / τ) of
    per-frame lip and voice embeddings. Each encoder runs once per window of `detect`'s
    windows (over the lips, and over the audio K frames wider on each side), so the cost is
    flat in K. Features are the MFCC of the whole audio padded with K + `AUDIO_CONTEXT` frames of
    digital silence, computed once per video."""

    AUDIO_CONTEXT = 8  # frames of audio beyond ±K that the audio encoder sees as context

    def __init__(
        self,
        model: nn.Module,
        max_offset: int = DEFAULT_MAX_OFFSET,
        window: int = WINDOW,
        context: int = CONTEXT,
    ) -> None:
        if not isinstance(model, LightSyncNet):
            raise InputError(f"LightSyncOffsets needs a LightSyncNet, got {type(model).__name__}")
        super().__init__(max_offset)
        next(windows(window, window, context))  # validates window and context
        self.model = model.eval()
        self.window, self.context = window, context
        self.pad = self.max_offset + self.AUDIO_CONTEXT

    def _features(self, audio: np.ndarray) -> np.ndarray:
        """MFCC rows of the audio with `pad` frames of silence before and `pad` + 1 after:
        frame f starts at row 4·(f + pad)."""
        return mfcc(with_silence(audio, self.pad, self.pad + 1))

    def matrix(self, crops: np.ndarray, features: np.ndarray, first: int) -> np.ndarray:
        """(2K+1, T) float32 sync probabilities of gray crops (T, 112, 112) at audio frame
        `first`; `features` from `self.features(audio)`."""
        crops = _gray_track(crops, first)
        k, c, r, n = self.max_offset, self.AUDIO_CONTEXT, ROWS_PER_FRAME, len(crops)
        if r * (first + self.pad) >= len(features):
            raise InputError(f"the track starts at frame {first}, past the end of the audio")
        out = np.empty((2 * k + 1, n), np.float32)
        device = self.model.log_temperature.device
        for a, b, keep, stop in windows(n, self.window, self.context):
            # Audio frames first + a − K − C … first + b + K + C − 1, i.e. padded rows from
            # 4·(first + a); a track may end in the audio's last, partial frame, or past it
            # (video longer than audio): repeat the last row, silence, as `detect` does.
            lo, hi = r * (first + a), r * (first + b + 2 * (k + c))
            rows = features[lo:hi]
            if len(rows) < hi - lo:
                rows = np.concatenate([rows, np.repeat(rows[-1:], hi - lo - len(rows), axis=0)])
            with torch.inference_mode():
                video = torch.from_numpy(np.ascontiguousarray(crops[a:b])).float()[None]
                visual = self.model.visual_embeddings(video.to(device))
                audio = self.model.audio_embeddings(
                    torch.from_numpy(rows.astype(np.float32))[None].to(device)
                )[:, c : c + b - a + 2 * k]
                probs = torch.sigmoid(self.model.offset_logits(visual, audio))[0]
            out[:, keep:stop] = probs[:, keep - a : stop - a].float().cpu().numpy()
        return out


class SumOffsets(_Rows):
    """Several backends' matrices combined: σ(Σ_i logit p_i), i.e. the sum of their logits
    (`models.ensemble.SyncPair`: sync-light-asd's broad rows and light-syncnet's sharp ones)."""

    def __init__(self, *backends: OffsetBackend) -> None:
        if not backends or len({b.max_offset for b in backends}) != 1:
            raise InputError("SumOffsets needs backends with one search range")
        super().__init__(backends[0].max_offset)
        self.backends = backends
        # A column reads what its widest part reads.
        self.column_images = max(b.column_images for b in backends)

    def _features(self, audio: np.ndarray) -> tuple:
        return tuple(b.features(audio) for b in self.backends)  # delayed once, here

    def matrix(self, crops: np.ndarray, features: tuple, first: int) -> np.ndarray:
        total = sum(
            clipped_logit(b.matrix(crops, f, first).astype(np.float64))
            for b, f in zip(self.backends, features, strict=True)
        )
        return expit(total).astype(np.float32)


class SyncNetOffsets(_Rows):
    """Sync matrix from SyncNet v2 (syncnet_python's network and weights, `models/syncnet.py`):
    column t compares the five 224×224 colour crops t − 2 … t + 2 (the first and last crop
    repeated at the track's ends, as IC-SyncNet's windows) with the 0.2 s MFCC window of the
    frames t + k − 2 … t + k + 2 — syncnet_python's lip window t − 2 against its audio window
    t − 2 + k, so row k holds its distance `dists[t − 2, k + vshift]` and its AV offset is −k.

    SyncNet gives distances, not probabilities. Row k, column t becomes
    σ(median_j d[j, t] − d[k, t] − 3) (`syncnet_probabilities`): the column's "framewise
    confidence" (syncnet_python's median-minus-distance, per frame) against the confidence of
    3 that LatentSync and others keep clips at, so p = 0.5 there. It is a fixed mapping, not a
    calibration on data: with VGG's weights, thresholds on these numbers mean what SyncNet's
    confidence means.
    """

    column_images = FRAMES_PER_WINDOW

    def __init__(
        self, model: nn.Module, max_offset: int = DEFAULT_MAX_OFFSET, batch: int = 20
    ) -> None:
        if not isinstance(model, SyncNetV2):
            raise InputError(f"SyncNetOffsets needs a SyncNet v2, got {type(model).__name__}")
        super().__init__(max_offset)
        if batch < 1:
            raise InputError("the window batch must be at least 1")
        self.model = model.eval()
        self.batch = batch
        # Digital silence around the audio: an audio window reaches 2 frames past its centre.
        self.pad = self.max_offset + 3

    def _features(self, audio: np.ndarray) -> np.ndarray:
        """MFCC (python_speech_features' defaults, as syncnet_python) of the whole audio with
        `pad` frames of silence on each side; its rows inside the audio equal `mfcc(audio)`."""
        return mfcc(with_silence(audio, self.pad, self.pad))

    def distances(self, crops: np.ndarray, features: np.ndarray, first: int) -> np.ndarray:
        """(2K+1, T) float32 SyncNet distances ‖lip − audio + 1e-6‖ of a track of T BGR crops
        (T, 224, 224, 3) at audio frame `first`; `features` from `self.features(audio)`."""
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (CROP_SIZE, CROP_SIZE, 3) or len(crops) == 0:
            raise InputError(
                f"SyncNet needs colour face crops (T, 224, 224, 3) with T > 0, got {crops.shape}"
            )
        if first < 0:
            raise InputError(f"track start {first} lies before the audio")
        k, n = self.max_offset, len(crops)
        # Audio windows centred on frames first − K … first + T − 1 + K; window u starts at
        # MFCC row 4·(u − 2 + pad) of the padded features.
        starts = np.arange(first - k, first + n + k) - 2 + self.pad
        if ROWS_PER_FRAME * starts[-1] + MFCC_ROWS_PER_WINDOW > len(features):
            raise InputError(
                f"the track reaches frame {first + n - 1 + k}, past the end of the audio"
            )
        device = next(self.model.parameters()).device
        lips, auds = [], []
        with torch.inference_mode():
            for a in range(0, n, self.batch):
                # The window of frame t starts at t − 2; the ends repeat the first/last crop.
                window = video_windows(crops, range(a - 2, min(a + self.batch, n) - 2), True)
                lips.append(self.model.forward_lip(window.to(device)).float().cpu())
            for a in range(0, len(starts), self.batch):
                window = mfcc_windows(features, starts[a : a + self.batch])
                auds.append(self.model.forward_aud(window.to(device)).float().cpu())
        lip, aud = torch.cat(lips), torch.cat(auds)
        out = np.empty((2 * k + 1, n), np.float32)
        # Row j (offset j − K), column t: audio window t + j of `aud`; 256 columns at a time
        # (all at once, the 1024-d differences would take 4 KB per frame per offset).
        for a in range(0, n, 256):
            b = min(a + 256, n)
            index = torch.arange(a, b)[None, :] + torch.arange(2 * k + 1)[:, None]
            out[:, a:b] = torch.linalg.vector_norm(lip[None, a:b] - aud[index] + 1e-6, dim=-1)
        return out

    def matrix(self, crops: np.ndarray, features: np.ndarray, first: int) -> np.ndarray:
        """(2K+1, T) float32 sync probabilities (`syncnet_probabilities` of `distances`)."""
        return syncnet_probabilities(self.distances(crops, features, first))


def syncnet_probabilities(distances: np.ndarray, conf_at_half: float = 3.0) -> np.ndarray:
    """(2K+1, T) SyncNet distances → σ(median over offsets − distance − conf_at_half), float32.

    Per column, median minus distance is syncnet_python's framewise confidence; a confidence
    of `conf_at_half` (3: the threshold LatentSync keeps clips at) maps to 0.5.
    """
    confidence = np.median(distances, axis=0, keepdims=True) - distances
    return (1.0 / (1.0 + np.exp(conf_at_half - confidence))).astype(np.float32)


def offset_backend(
    model: str = "ic-syncnet",
    weights: str | None = None,
    max_offset: int = DEFAULT_MAX_OFFSET,
    device: str = "cpu",
    window: int = WINDOW,
    batch: int = 32,
    audio_lag_ms: float | None = None,
) -> OffsetBackend:
    """The sync backend of a registry model: sync-pair, light-syncnet, IC-SyncNet or SyncNet v2
    (kind "sync"), or an ASD model with separable encoders (`ASDOffsets` in `window`-frame
    scoring windows, `batch` shifts at a time, as `detect` scores with the same window).

    `audio_lag_ms`: how late the audio of the weights' training clips was; the backend delays
    the audio by as much, so that offset 0 means in sync. None: the registry's value for these
    weights (`models.audio_lag_ms`: 40 ms for ours, 0 for the peers' and unknown files)."""
    loaded = load_model(model, weights=weights, device=device)
    backend: _Rows
    if isinstance(loaded, SyncPair):
        backend = SumOffsets(
            ASDOffsets(loaded.asd, max_offset, window, window // 6, batch),
            LightSyncOffsets(loaded.lips, max_offset, window, window // 6),
        )
    elif isinstance(loaded, LightSyncNet):
        backend = LightSyncOffsets(loaded, max_offset, window, window // 6)
    elif isinstance(loaded, SyncNetV2):
        backend = SyncNetOffsets(loaded, max_offset)
    elif get_spec(model).kind == "sync":
        backend = ICSyncOffsets(loaded, max_offset)
    else:
        backend = ASDOffsets(loaded, max_offset, window, window // 6, batch)
    lag = registry_lag(model, weights) if audio_lag_ms is None else audio_lag_ms
    if lag < 0:
        raise InputError(f"the audio lag must be ≥ 0 ms, got {lag}")
    backend.audio_delay = int(round(lag * SAMPLE_RATE / 1000))
    return backend


__all__ = [
    "ASDOffsets",
    "ICSyncOffsets",
    "LightSyncOffsets",
    "SumOffsets",
    "SyncNetOffsets",
    "offset_backend",
    "CONTEXT",
    "DEFAULT_MAX_OFFSET",
    "MAX_MAX_OFFSET",
    "OffsetBackend",
    "WINDOW",
    "padded_features",
    "with_silence",
    "shifted",
    "syncnet_probabilities",
    "windows",
]
