"""How an ASD model is applied along a face track: streaming, in bounded memory.

Two strategies, both fed crops as they are made and both holding at most a few seconds of
crops:

- `ChunkScorer` (default): one model pass over overlapping windows; each window's first and
  last `context` frames only give context to its neighbours.
- `DemoScorer` ("demo"): the peers' demo score, reproduced exactly: the track is cut into
  chunks of 1, 2, 3, 4, 5 and 6 s, each chunk scored separately, the six results averaged,
  then the 5-frame smoothing of the demo's visualisation.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .models.onnx import OrtModel
from .timebase import ROWS_PER_FRAME

DEMO_DURATIONS = (1, 2, 3, 4, 5, 6)  # seconds; the peers' {1,1,1,2,2,2,3,3,4,5,6} is a set


def run_model(model: nn.Module | OrtModel, crops: np.ndarray, mfcc: np.ndarray) -> np.ndarray:
    """(T, 112, 112) uint8 crops and (4T, 13) MFCC rows (`audio.asd_features`) → (T, 2)
    float32 logits."""
    with torch.inference_mode():
        video = torch.from_numpy(np.ascontiguousarray(crops)).float().unsqueeze(0)
        audio = torch.from_numpy(np.ascontiguousarray(mfcc, dtype=np.float32)).unsqueeze(0)
        # Torch modules live on a device; the ONNX Runtime twin says `device` itself.
        device = getattr(model, "device", None) or next(model.parameters()).device
        return model.frame_logits(video.to(device), audio.to(device))[0].float().cpu().numpy()


def softmax1(logits: np.ndarray) -> np.ndarray:
    """Probability of class 1 from (T, 2) logits."""
    return 1.0 / (1.0 + np.exp(logits[:, 0] - logits[:, 1]))


class _Scorer:
    """Collects crops for a track starting at model frame `start`; MFCC rows come from the
    whole-file MFCC (row 4k belongs to frame k, exactly the rows of the track's own audio)."""

    def __init__(self, model: nn.Module, mfcc: np.ndarray, start: int) -> None:
        self.model = model
        self.mfcc = mfcc
        self.start = start
        self._crops: list[np.ndarray] = []
        self._crops_start = 0  # track-relative index of self._crops[0]
        self.n = 0  # crops received

    def push(self, crops: np.ndarray) -> None:
        self._crops.extend(crops)
        self.n += len(crops)
        self._advance(final=False)

    def _window(self, a: int, b: int) -> np.ndarray:
        """Logits for track frames [a, b), with exactly 4 MFCC rows per frame."""
        crops = np.stack(self._crops[a - self._crops_start : b - self._crops_start])
        r0 = (self.start + a) * ROWS_PER_FRAME
        r1 = (self.start + b) * ROWS_PER_FRAME
        rows = self.mfcc[r0:r1]
        if len(rows) < r1 - r0:
            # The file's MFCC ends inside its last frame (n frames give 4n − 1 rows): repeat
            # the last row, so models that need whole frames of audio get them.
            rows = np.concatenate([rows, np.repeat(rows[-1:], r1 - r0 - len(rows), axis=0)])
        return run_model(self.model, crops, rows)

    def _drop_before(self, a: int) -> None:
        del self._crops[: a - self._crops_start]
        self._crops_start = a

    def _advance(self, final: bool) -> None:
        raise NotImplementedError

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """(T,) class-1 logit and (T,) speaking probability for every pushed frame."""
        raise NotImplementedError


class ChunkScorer(_Scorer):
    def __init__(
        self, model: nn.Module, mfcc: np.ndarray, start: int, window: int = 150, context: int = 25
    ) -> None:
        super().__init__(model, mfcc, start)
        if window <= 2 * context:
            raise ValueError("window must be longer than twice the context")
        self.window, self.context = window, context
        self._logits: list[np.ndarray] = []
        self._done = 0  # frames with final logits

    def _advance(self, final: bool) -> None:
        while self.n - self._crops_start >= self.window:
            a = self._crops_start
            logits = self._window(a, a + self.window)
            keep_from = self._done - a
            keep_to = self.window - self.context
            self._logits.append(logits[keep_from:keep_to])
            self._done = a + keep_to
            self._drop_before(self._done - self.context)
        if final and self._done < self.n:
            a = self._crops_start
            logits = self._window(a, self.n)
            self._logits.append(logits[self._done - a :])
            self._done = self.n

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        self._advance(final=True)
        logits = np.concatenate(self._logits) if self._logits else np.zeros((0, 2), np.float32)
        return logits[:, 1], softmax1(logits)


class DemoScorer(_Scorer):
    """The demo's multi-duration average, chunk for chunk as the original computes it."""

    def __init__(self, model: nn.Module, mfcc: np.ndarray, start: int) -> None:
        super().__init__(model, mfcc, start)
        self._sums: dict[int, list[np.ndarray]] = {d: [] for d in DEMO_DURATIONS}
        self._next = dict.fromkeys(DEMO_DURATIONS, 0)  # next chunk start per duration

    def _advance(self, final: bool) -> None:
        # The original crops the track's audio (n·640 samples → 4n − 1 MFCC rows) and keeps
        # length = (rows − rows % 4) / 100 s, so the last frame of every track is not scored:
        # while more frames may come, only chunks that end before the newest frame are safe.
        usable = self.n - 1
        for d in DEMO_DURATIONS:
            a = self._next[d]
            while (b := min(a + 25 * d, usable) if final else a + 25 * d) <= usable and a < b:
                self._sums[d].append(self._window(a, b))
                a = self._next[d] = b
        self._drop_before(min(self._next.values()))

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        self._advance(final=True)
        mean = np.mean([np.concatenate(self._sums[d]) for d in DEMO_DURATIONS], axis=0)
        smoothed = demo_smoothing(mean, self.n)
        return smoothed[:, 1], softmax1(smoothed)


def demo_smoothing(scores: np.ndarray, n_frames: int) -> np.ndarray:
    """The demo's visualisation smoothing: frame f gets mean(scores[max(f−2, 0) : min(f+3, N−1)]).

    The end bound N − 1 is the original's: the last score never enters the mean. (TalkNet's
    Columbia evaluation smooths the same way.) Where that slice is empty (N = 1) the frame keeps
    its own score rather than the original's NaN.
    """
    n = len(scores)
    out = np.empty((n_frames, *scores.shape[1:]), dtype=np.float64)
    for f in range(n_frames):
        window = scores[max(f - 2, 0) : min(f + 3, n - 1)]
        out[f] = window.mean(axis=0) if len(window) else scores[min(f, n - 1)]
    return out


def demo_scores(model: nn.Module, video: np.ndarray, mfcc: np.ndarray) -> np.ndarray:
    """The original demo's `evaluate_network` for one track: rounded multi-duration scores.

    `video` (T, 112, 112) gray crops, `mfcc` the track audio's MFCC rows. Returns float64 (N,)
    class-1 scores rounded to 0.1 in float32, as the original pickles them.
    """
    length = min((len(mfcc) - len(mfcc) % 4) / 100, len(video) / 25)
    mfcc = mfcc[: int(round(length * 100))]
    video = video[: int(round(length * 25))]
    per_duration = []
    for d in DEMO_DURATIONS:
        chunks = int(np.ceil(length / d))
        per_duration.append(
            np.concatenate(
                [
                    run_model(
                        model,
                        video[i * d * 25 : (i + 1) * d * 25],
                        mfcc[i * d * 100 : (i + 1) * d * 100],
                    )[:, 1]
                    for i in range(chunks)
                ]
            )
        )
    return np.round(np.mean(np.array(per_duration), axis=0), 1).astype(float)


def score_track(
    model: nn.Module | OrtModel, crops: np.ndarray, audio: np.ndarray, window: int = 150
) -> tuple[np.ndarray, np.ndarray]:
    """Class-1 logits and speaking probabilities of one whole face track: (T,), (T,).

    `crops` (T, 112, 112) uint8, `audio` the track's own 16 kHz int16 samples (640·T): scored as
    `detect` scores it (`ChunkScorer`, 6 s windows with 1 s of context each side).
    """
    from .audio import asd_features, reads_mel

    features = asd_features(audio, reads_mel(model))
    scorer = ChunkScorer(model, features, 0, window=window, context=window // 6)
    scorer.push(crops)
    return scorer.finish()
