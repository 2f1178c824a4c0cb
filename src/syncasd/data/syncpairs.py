"""Training batches for a sync-net (IC-SyncNet) from a corpus: mouth windows and audio windows.

A sample is five consecutive mouth images of a face track whose frames are all labelled
speaking (sync is only defined where the face speaks), the log-mel window of its own audio at
offset 0 (the positive) and at `hard` other offsets of the same track, |k| in
`min_shift`…`max_shift` frames (the paper's hard negatives). Easy negatives, other tracks'
audio, are the other samples' positives in the batch (the loss picks them). Augmentation: the
face crop flipped, rotated, scaled and shifted (`augment_crops`) before the mouth is cut; audio
gain and white noise.

Batch `i` of epoch `e` depends on `seed, e, i` alone, as in `samples.BatchMaker`: runs resume
and spread over processes without shared state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..audio import log_mel, mel_window
from ..models.icsyncnet import HALF, IMAGES, ICSyncNetDims, mouth_crops
from ..timebase import SAMPLES_PER_FRAME
from .corpus import Corpus
from .samples import (
    AudioAugment,
    VoiceDonors,
    augment_crops,
    gain_and_noise,
    mfcc_rows,
    realigned_tracks,
    track_audio,
)


@dataclass
class SyncSampleConfig(AudioAugment):
    batch: int = 48  # positives per batch
    hard: int = 6  # hard negatives per positive (the paper: 15; the audio encoder's cost)
    min_shift: int = 2  # |k| of a hard negative: ±1 frame counts as in sync when scoring
    max_shift: int = 15
    flip_prob: float = 0.5  # probability of the augmented crop (flip, rotation, scale, shift)
    photometric: bool = False  # the augmented crop also dim, noisy, low-resolution
    # A face tilted up or down puts its mouth higher or lower in the crop's lower half (the
    # mouth image): with this probability the five images' content moves up by a uniform
    # number of rows in `lift_rows` (negative: down), edges repeated. Sync pack only.
    lift_prob: float = 0.0
    lift_rows: tuple[float, float] = (-4.0, 16.0)


def window_centres(labels: np.ndarray) -> np.ndarray:
    """The frames of one track whose five-image window lies inside it and is labelled
    speaking throughout."""
    labels = np.asarray(labels, bool)
    if len(labels) < IMAGES:
        return np.zeros(0, np.int64)
    window = np.lib.stride_tricks.sliding_window_view(labels, IMAGES).all(axis=1)
    return np.flatnonzero(window) + HALF


def speaking_centres(corpus: Corpus, tracks: list[int]) -> np.ndarray:
    """(n, 2) int64 rows (track, frame) of every `window_centres` frame of the tracks."""
    rows = []
    for i in tracks:
        t = corpus.tracks[i]
        if t.negative:
            continue
        frames = window_centres(corpus.labels[t.frames])
        rows.append(np.stack([np.full(len(frames), i), frames], axis=1))
    return np.concatenate(rows) if rows else np.zeros((0, 2), np.int64)


class SyncBatchMaker:
    """Batch `(epoch, index)` → "mouths" (B, 5, H, W) uint8 and "mel" (B, 1 + hard, 80, 32)
    float32, the positive audio window first."""

    def __init__(
        self,
        corpus: Corpus,
        tracks: list[int],
        dims: ICSyncNetDims,
        config: SyncSampleConfig,
        seed: int = 0,
    ) -> None:
        self.corpus, self.dims, self.config, self.seed = corpus, dims, config, seed
        self.centres = speaking_centres(corpus, tracks)
        if len(self.centres) < config.batch:
            raise ValueError(
                f"{len(self.centres)} speaking windows, fewer than one batch ({config.batch})"
            )
        shifts = np.arange(-config.max_shift, config.max_shift + 1)
        self.shifts = shifts[np.abs(shifts) >= config.min_shift]
        if len(self.shifts) < config.hard:
            raise ValueError("fewer hard-negative offsets than hard negatives per sample")

    def steps_per_epoch(self) -> int:
        """About one pass over the speaking windows."""
        return max(1, len(self.centres) // self.config.batch)

    def sample(
        self, rng: np.random.Generator, track: int, centre: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """One sample: mouths (5, H, W) and mel windows (1 + hard, 80, 32)."""
        c = self.config
        t = self.corpus.tracks[track]
        start = centre - HALF
        crops = np.asarray(self.corpus.crops[t.offset + start : t.offset + start + IMAGES])
        if rng.random() < c.flip_prob:
            crops = augment_crops(crops, rng, c.photometric)
        mouths = mouth_crops(crops, self.dims)[:, 0]

        # One spectrogram of the audio around every offset used (3 frames more on each side
        # than the 32-column windows reach), so every window sees real neighbouring audio.
        margin = c.max_shift + 3
        first = start - margin
        audio = track_audio(
            self.corpus, track, first * SAMPLES_PER_FRAME, (IMAGES + 2 * margin) * SAMPLES_PER_FRAME
        )
        audio = gain_and_noise(audio, rng, c)
        mel = log_mel(np.clip(np.round(audio), -32768, 32767).astype(np.int16))
        offsets = np.concatenate([[0], rng.choice(self.shifts, c.hard, replace=False)])
        windows = np.stack([mel_window(mel, margin + int(k)) for k in offsets])
        return mouths, windows

    def __call__(self, epoch: int, index: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch, index])
        picks = rng.choice(len(self.centres), self.config.batch, replace=False)
        samples = [self.sample(rng, *map(int, self.centres[p])) for p in picks]
        return {
            "mouths": np.stack([m for m, _ in samples]),
            "mel": np.stack([w for _, w in samples]).astype(np.float32),
        }


@dataclass
class SegmentSampleConfig(AudioAugment):
    """Samples of a sync-net with per-frame embeddings (LightSyncNet): lip segments and the
    audio around them at every offset."""

    batch: int = 24  # segments per batch
    frames: int = 16  # lip frames per segment
    max_shift: int = 15  # offsets −K … K scored against every lip frame
    min_shift: int = 2  # |k| of a BBCE hard negative: ±1 frame counts as in sync when scoring
    # Frames at each end of a track whose audio embedding would see past the track (the audio
    # encoder's and head's reach): never an anchor, never a candidate offset.
    margin: int = 6
    min_speaking: float = 0.5  # share of a segment's frames labelled speaking
    # Curation (LatentSync keeps clips with |offset| ≤ 6): drop the training tracks whose own
    # offset, as the initial model finds it (`train_sync.track_offsets`), exceeds this many
    # frames; None keeps all. Sources such as YouTube interviews are often a few frames off,
    # and a track trained as in sync at the wrong offset teaches the wrong peak.
    max_track_offset: int | None = None
    # Realignment: a JSON file {video id: frames} of the training tracks' own offsets (the
    # voice that many frames after the lips; `bench/track_offsets.py` writes it). A listed
    # track's audio is read that many frames later, so that its lips and voice meet at offset
    # 0; a null drops the track; unlisted tracks are read as they are.
    track_offsets: str | None = None
    flip_prob: float = 0.5  # probability of the augmented crop (flip, rotation, scale, shift)
    photometric: bool = False  # the augmented crop also dim, noisy, low-resolution
    # Also the segment's audio dubbed ("mfcc_dubbed", `samples.VoiceDonors`): its speech
    # replaced by another identity's voice timed to it, one more negative at offset 0.
    dubbed: bool = False
    # Crosstalk: with this probability another identity's voice (from one of its onsets) is
    # mixed over the segment's whole audio, `talk_over_snr_db` (lo, hi) below its own speech,
    # labels and offsets kept: the own voice under another's is still in sync with the lips.
    talk_over_prob: float = 0.0
    talk_over_snr_db: tuple[float, float] = (-5.0, 5.0)


def segment_starts(
    corpus: Corpus,
    tracks: list[int],
    config: SegmentSampleConfig,
    lag: dict[int, int] | None = None,
) -> np.ndarray:
    """(n, 2) int64 rows (track, first frame) of every segment that keeps `margin` frames
    from both ends of its track, lips and audio (read `lag[track]` frames later), and is
    labelled speaking on `min_speaking` of its frames."""
    s, m = config.frames, config.margin
    rows = []
    for i in tracks:
        t = corpus.tracks[i]
        shift = (lag or {}).get(i, 0)
        first, last = m + max(0, -shift), t.length - s - m - max(0, shift)
        if t.negative or last < first:
            continue
        labels = np.asarray(corpus.labels[t.frames], np.float64)
        share = np.lib.stride_tricks.sliding_window_view(labels, s).mean(axis=1)
        starts = np.arange(first, last + 1)
        starts = starts[share[starts] >= config.min_speaking]
        rows.append(np.stack([np.full(len(starts), i), starts], axis=1))
    return np.concatenate(rows) if rows else np.zeros((0, 2), np.int64)


class SegmentBatchMaker:
    """Batch `(epoch, index)` → "crops" (B, S, 112, 112) uint8; "mfcc" (B, 4(S + 2K + 2M), 13)
    float32, the audio of frames s − K − M … s + S + K + M − 1 of the track (zeros outside it;
    the embeddings of its first and last M frames only give the others their context);
    "valid" (B, 2K + 1, S) bool, the offsets whose audio frame keeps M frames from the track's
    ends; "speaking" (B, S) bool, the anchors (sync is defined where the face speaks)."""

    def __init__(
        self, corpus: Corpus, tracks: list[int], config: SegmentSampleConfig, seed: int = 0
    ) -> None:
        self.corpus, self.config, self.seed = corpus, config, seed
        # Frames by which each track's voice follows its lips (realignment); 0 when unknown.
        tracks, self.lag = realigned_tracks(config.track_offsets, corpus, tracks)
        self.starts = segment_starts(corpus, tracks, config, self.lag)
        wants_donors = config.dubbed or config.talk_over_prob > 0
        self.donors = VoiceDonors(corpus, tracks) if wants_donors else None
        if len(self.starts) < config.batch:
            raise ValueError(
                f"{len(self.starts)} speaking segments, fewer than one batch ({config.batch})"
            )

    def steps_per_epoch(self) -> int:
        """About one pass over the speaking frames (segments overlap; each frame once)."""
        frames = len(self.starts) + (self.config.frames - 1) * len(np.unique(self.starts[:, 0]))
        return max(1, frames // (self.config.batch * self.config.frames))

    def sample(self, rng: np.random.Generator, track: int, start: int) -> dict[str, np.ndarray]:
        c = self.config
        t = self.corpus.tracks[track]
        s, k, m = c.frames, c.max_shift, c.margin
        crops = np.asarray(self.corpus.crops[t.offset + start : t.offset + start + s])
        if rng.random() < c.flip_prob:
            crops = augment_crops(crops, rng, c.photometric)
        span = s + 2 * (k + m)
        lag = self.lag.get(track, 0)
        # One frame more than the span: MFCC drops the last, partial window.
        audio = track_audio(
            self.corpus,
            track,
            (start + lag - k - m) * SAMPLES_PER_FRAME,
            (span + 1) * SAMPLES_PER_FRAME,
        )
        if self.donors is not None:
            first = start + lag - k - m  # the span's first frame, in track frames
            frames = np.arange(first, first + span + 1)
            inside = (frames >= 0) & (frames < t.length)
            spoken = np.zeros(span + 1, bool)
            spoken[inside] = self.corpus.labels[t.offset + frames[inside]]
            # Drawn only when asked for, so that the recipes before it keep their streams.
            if c.talk_over_prob > 0 and rng.random() < c.talk_over_prob:
                snr = rng.uniform(*c.talk_over_snr_db)
                audio = self.donors.talk_over(rng, audio, spoken, t.identity, snr)
        features = mfcc_rows(gain_and_noise(audio, rng, c), span)
        # Audio frame of lip frame j at offset i − K, in track frames.
        heard = start + lag + np.arange(s)[None, :] + np.arange(-k, k + 1)[:, None]
        labels = np.asarray(self.corpus.labels[t.offset + start : t.offset + start + s], bool)
        sample = {
            "crops": crops,
            "mfcc": features.astype(np.float32),
            "valid": (heard >= m) & (heard < t.length - m),
            "speaking": labels,
        }
        if c.dubbed:
            dubbed = self.donors.dub(rng, audio, spoken, t.identity)
            dubbed = mfcc_rows(gain_and_noise(dubbed, rng, c), span)
            sample["mfcc_dubbed"] = dubbed.astype(np.float32)
        return sample

    def __call__(self, epoch: int, index: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch, index])
        picks = rng.choice(len(self.starts), self.config.batch, replace=False)
        samples = [self.sample(rng, *map(int, self.starts[p])) for p in picks]
        return {key: np.stack([x[key] for x in samples]) for key in samples[0]}
