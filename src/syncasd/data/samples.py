"""Training batches from a corpus, built the way the seeds build their samples.

Every sample is a window of one face track with the audio under it, labelled per frame. Its
audio is one of (TalkNet's TalkSet mix, plus what the seed tests with):

- the track's own voice in sync, or shifted by at most `small_shift` frames (real videos are
  often that far off), labels kept;
- the own voice with another track's audio mixed in as noise (`noise_snr_db` below it),
  labels kept;
- near silence (faint white noise): every frame not speaking.

Another speaker's voice (mismatch) is made in the embedding space by the loss
(`syncasd.losses.cross_modal_contrastive_loss`), as the seed does; the own voice shifted by more
than 125 ms (misalign) too, by a circular roll, unless `misaligned_shift` asks for it here, in
the waveform (no seam inside the window). Augmentations: gain, white and pink noise
(`AudioAugment`, shared by every sampler), and for the face
either a flipped, rotated, scaled and shifted crop (`augment_crops`; with `photometric`, also
dimmed, noisy or low-resolution) or, when the visual encoder is frozen, its embedding of such
a crop, computed once per track (`visual_variants`).

A batch holds about `batch_frames` frames of windows of equal length (the seed's batches of
about 2,500 frames); batch `i` of epoch `e` is drawn from `seed, e, i` alone, so any process
can build any batch: training resumes and runs data-parallel without shared state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..audio import mfcc
from ..errors import SyncASDError
from ..timebase import SAMPLES_PER_FRAME
from .corpus import Corpus
from .labelled import speech_segments

# python_speech_features: 25 ms windows every 10 ms; 4 rows per frame need 4·640 − 160 + 400
# samples, i.e. 240 past the window's last frame.
MFCC_TAIL = 400 - 160


@dataclass
class AudioAugment:
    """The audio augmentation every sampler's config carries (`gain_and_noise`)."""

    gain_db: tuple[float, float] = (-6.0, 6.0)
    white_noise_prob: float = 0.3
    white_snr_db: tuple[float, float] = (10.0, 40.0)
    # Pink noise (power ∝ 1/f, as room, street and crowd noise roughly are) under the window,
    # down to below the voice. Off in every shipped recipe: one epoch of it did not make the
    # default hear speech under 0 dB of noise (sync-light-asd's model card).
    pink_noise_prob: float = 0.0
    pink_snr_db: tuple[float, float] = (-5.0, 20.0)


@dataclass
class SampleConfig(AudioAugment):
    batch_frames: int = 2500
    max_frames: int = 100  # window length cap (4 s)
    min_frames: int = 8
    small_shift: float = 2.0  # |shift| in frames that keeps the label
    noise_prob: float = 0.3  # another track's audio mixed in, label kept
    noise_snr_db: tuple[float, float] = (5.0, 20.0)
    silence_prob: float = 0.05  # audio replaced by faint noise, every frame negative
    flip_prob: float = 0.5  # the augmented visual variant (flip, rotation, scale, shift)
    photometric: bool = False  # the augmented variant also dim, noisy, low-resolution
    # (lo, hi): also give each window its own audio shifted by ±lo…hi frames in the waveform
    # ("mfcc_misaligned"), for the loss's misaligned term; None: the loss rolls embeddings.
    misaligned_shift: tuple[int, int] | None = None
    # Also give each window a dubbed copy of its audio ("mfcc_dubbed", for the loss's dubbed
    # term): every run of its speech replaced by another identity's voice from one of its
    # onsets on, at the same loudness, so the new voice starts and stops with the lips.
    dubbed: bool = False
    # Conversations: with this probability a window's audio also hands the floor to another
    # identity for `turn_frames` (lo, hi) frames — that voice, from one of its onsets, in place
    # of the own audio there, labelled not speaking — so that the model says who speaks now,
    # not who speaks somewhere in the window (the lips may go on moving, but are not heard).
    turn_prob: float = 0.0
    turn_frames: tuple[int, int] = (25, 60)
    # Realignment (as light-syncnet's `samples.track_offsets`, `bench/track_offsets.py`): a
    # JSON file {video id: frames} of the training tracks' own offsets, the voice that many
    # frames after the lips. A listed track's audio, and its labels, which come from the audio
    # (word timings, VAD), are read that many frames later, so that lips, voice and labels meet
    # at offset 0; a null drops the track; unlisted tracks are read as they are.
    track_offsets: str | None = None


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def speech_rms(audio: np.ndarray, labels: np.ndarray) -> float | None:
    """RMS of a window's audio (frame j = samples 640·j …) over its frames labelled speaking;
    None when none is."""
    speech = np.repeat(np.asarray(labels, bool), SAMPLES_PER_FRAME)[: len(audio)]
    return rms(audio[: len(speech)][speech]) if speech.any() else None


def mix_noise(
    audio: np.ndarray, noise: np.ndarray, snr_db: float, level: float | None = None
) -> np.ndarray:
    """`audio` plus `noise` scaled to `snr_db` below `level` (default: the audio's RMS)."""
    level = rms(audio) if level is None else level
    return audio + noise * (level / rms(noise)) * 10 ** (-snr_db / 20)


def track_audio(corpus: Corpus, track: int, start: int, samples: int) -> np.ndarray:
    """Samples [start, start + samples) of a track's audio (sample 0 = its first frame's) as
    float32, zeros outside the track: the corpus keeps only each track's own audio."""
    t = corpus.tracks[track]
    audio = corpus.audio[t.offset * SAMPLES_PER_FRAME : (t.offset + t.length) * SAMPLES_PER_FRAME]
    out = np.zeros(samples, np.float32)
    a, b = max(start, 0), min(start + samples, len(audio))
    if b > a:
        out[a - start : b - start] = audio[a:b]
    return out


def _whole_frames_or_none(value: object) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def realigned_tracks(
    path: str | Path | None, corpus: Corpus, tracks: list[int]
) -> tuple[list[int], dict[int, int]]:
    """`samples.track_offsets`: `tracks` without those the file drops (null), and the frames by
    which each listed track's voice follows its lips (its non-zero offsets, by corpus index).
    No file: every track, no lag."""
    if not path:
        return tracks, {}
    try:
        table = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise SyncASDError(f"samples.track_offsets: cannot read {path} ({e})") from None
    if not isinstance(table, dict) or not all(map(_whole_frames_or_none, table.values())):
        raise SyncASDError(f"samples.track_offsets: {path} must map video ids to whole frames")
    found = {i: table.get(corpus.tracks[i].video_id, 0) for i in tracks}
    return [i for i in tracks if found[i] is not None], {i: o for i, o in found.items() if o}


def gain_and_noise(audio: np.ndarray, rng: np.random.Generator, config: AudioAugment) -> np.ndarray:
    """The audio augmentation every sampler shares: a gain drawn from `config.gain_db`, then
    with probability `config.white_noise_prob` white noise at an SNR from `white_snr_db`, then
    with probability `pink_noise_prob` pink noise at an SNR from `pink_snr_db` (against the
    window's RMS)."""
    audio = audio * 10 ** (rng.uniform(*config.gain_db) / 20)
    if rng.random() < config.white_noise_prob and rms(audio) > 0:
        snr = rng.uniform(*config.white_snr_db)
        audio = audio + rng.normal(0, rms(audio) * 10 ** (-snr / 20), audio.shape)
    # Only drawn when asked for, so that the recipes before it keep their random streams.
    if config.pink_noise_prob and rng.random() < config.pink_noise_prob and rms(audio) > 0:
        snr = rng.uniform(*config.pink_snr_db)
        audio = mix_noise(audio, pink_noise(len(audio), rng), snr)
    return audio


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` samples of unit-RMS noise whose power falls as 1/f (white noise shaped in the
    frequency domain; the DC bin dropped)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum[0] = 0.0
    spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum)))
    noise = np.fft.irfft(spectrum, n)
    return noise / np.sqrt(np.mean(noise**2))


def augment_crops(
    crops: np.ndarray, rng: np.random.Generator, photometric: bool = False
) -> np.ndarray:
    """One random flip, rotation (±8°), scale (0.92–1.08) and shift (±4 px) for a whole
    window of (T, 112, 112) uint8 crops, as TalkNet's and Light-ASD's training does per clip;
    with `photometric`, also poor light and a poor camera (`degrade_photometric`)."""
    t, h, w = crops.shape
    angle = rng.uniform(-8, 8)
    scale = rng.uniform(0.92, 1.08)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[:, 2] += rng.uniform(-4, 4, 2)
    out = np.empty_like(crops)
    for i in range(t):
        out[i] = cv2.warpAffine(crops[i], m, (w, h), borderMode=cv2.BORDER_REFLECT)
    if rng.random() < 0.5:
        out = out[:, :, ::-1]
    out = np.ascontiguousarray(out)
    return degrade_photometric(out, rng) if photometric else out


def degrade_photometric(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A window of (T, H, W) uint8 crops as a dim room and a cheap camera would give it, drawn
    once for the window: contrast × 0.3–1 about the window's mean, brightness −40…+20 grey
    levels, gamma 0.7–1.5; with probability 0.5 the face seen 16–64 px tall (down, then back
    up); sensor noise of σ 0–8 grey levels. Light-ASD's AVA training saw none of this, and
    well-lit interviews and news teach none of it."""
    x = crops.astype(np.float32)
    mean = float(x.mean())
    x = (x - mean) * rng.uniform(0.3, 1.0) + mean + rng.uniform(-40, 20)
    x = 255 * (np.clip(x, 0, 255) / 255) ** rng.uniform(0.7, 1.5)
    if rng.random() < 0.5:
        x = seen_at(x, int(rng.integers(16, 65)))
    x += rng.normal(0, rng.uniform(0, 8), x.shape).astype(np.float32)
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def seen_at(frames: np.ndarray, pixels: int) -> np.ndarray:
    """(T, H, W) frames as a camera would give a face `pixels` tall: each downscaled (area
    averaging) to that height and scaled back up (bilinear), the dtype kept."""
    t, h, w = frames.shape
    small = (max(1, round(pixels * w / h)), pixels)
    out = np.empty_like(frames)
    for i in range(t):
        out[i] = cv2.resize(cv2.resize(frames[i], small, interpolation=cv2.INTER_AREA), (w, h))
    return out


class BatchMaker:
    """Batch `(epoch, index)` → dict of arrays: "visual" (B, L, …) either crops (uint8) or
    embeddings (float32), "mfcc" (B, 4L, 13) float32, "labels" (B, L) int64."""

    def __init__(
        self,
        corpus: Corpus,
        tracks: list[int],
        config: SampleConfig,
        seed: int = 0,
        visual_variants: list[np.ndarray] | None = None,
    ) -> None:
        self.corpus = corpus
        self.config = config
        self.seed = seed
        self.variants = visual_variants
        # Frames by which each track's voice (and labels) follow its lips; 0 when unknown.
        tracks, self.lag = realigned_tracks(config.track_offsets, corpus, tracks)
        # A window's lips and its audio must both lie in the track: |lag| frames fewer.
        usable = {i: corpus.tracks[i].length - abs(self.lag.get(i, 0)) for i in tracks}
        self.tracks = [i for i in tracks if usable[i] >= config.min_frames]
        if len(self.tracks) < 2:
            raise ValueError("training needs at least two face tracks")
        self.lengths = np.array([usable[i] for i in self.tracks])
        self.weights = self.lengths / self.lengths.sum()
        needs_donors = config.dubbed or config.turn_prob > 0
        self.donors = VoiceDonors(corpus, self.tracks) if needs_donors else None

    def steps_per_epoch(self) -> int:
        """About one pass over every frame of the tracks."""
        return max(1, int(self.lengths.sum()) // self.config.batch_frames)

    def _window_audio(self, track: int, start: int, n: int) -> np.ndarray:
        """Samples [start, start + 640·n + tail) of a track's audio, zeros outside it."""
        return track_audio(self.corpus, track, start, n * SAMPLES_PER_FRAME + MFCC_TAIL)

    def _audio(
        self,
        rng: np.random.Generator,
        track: int,
        start: int,
        n: int,
        labels: np.ndarray,
        silence: bool = True,
        identity: str | None = None,
    ):
        """A window's audio and labels; `identity` (the track's) allows a turn."""
        c = self.config
        if silence and rng.random() < c.silence_prob:
            level = 10 ** rng.uniform(0, 1.5)  # ±1 … ±30 of 32768: faint room noise
            return rng.normal(0, level, n * SAMPLES_PER_FRAME + MFCC_TAIL), np.zeros_like(labels)
        shift = int(rng.uniform(-c.small_shift, c.small_shift) * SAMPLES_PER_FRAME)
        audio = self._window_audio(track, start * SAMPLES_PER_FRAME + shift, n)
        # Before noise and gain, so that nothing but the voice changes at the turn.
        if identity is not None and c.turn_prob > 0 and rng.random() < c.turn_prob:
            audio, labels = self.donors.turn(rng, audio, labels, identity, c.turn_frames)
        if rng.random() < c.noise_prob:
            other = int(rng.choice(self.tracks, p=self.weights))
            length = self.corpus.tracks[other].length
            o = int(rng.integers(0, max(1, length - n + 1)))
            noise = self._window_audio(other, o * SAMPLES_PER_FRAME, n)
            if rms(noise) > 0 and rms(audio) > 0:
                audio = mix_noise(audio, noise, rng.uniform(*c.noise_snr_db))
        return gain_and_noise(audio, rng, c), labels

    def __call__(self, epoch: int, index: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch, index])
        c = self.config
        anchor = int(rng.choice(len(self.tracks), p=self.weights))
        length = int(min(self.lengths[anchor], c.max_frames))
        fits = np.flatnonzero(self.lengths >= length)
        p = self.weights[fits] / self.weights[fits].sum()
        count = max(2, c.batch_frames // length)
        chosen = [anchor] + [int(fits[k]) for k in rng.choice(len(fits), count - 1, p=p)]
        visual, mfccs, labels, misaligned, mfcc_dubbed, lips = [], [], [], [], [], []
        for row in chosen:
            i = self.tracks[row]
            t = self.corpus.tracks[i]
            lag = self.lag.get(i, 0)
            # Lips from frame s, audio and labels from frame a, both inside the track.
            s = int(rng.integers(0, self.lengths[row] - length + 1)) + max(0, -lag)
            a = s + lag
            y = np.asarray(self.corpus.labels[t.offset + a : t.offset + a + length])
            own_labels = y
            audio, y = self._audio(rng, i, a, length, y, identity=t.identity)
            mfccs.append(mfcc_rows(audio, length))
            labels.append(y)
            lips.append(own_labels)
            if c.misaligned_shift is not None:
                lo, hi = c.misaligned_shift
                k = int(rng.integers(lo, hi + 1)) * (1 if rng.random() < 0.5 else -1)
                # The same voice k frames off, read past the window (zeros past the track):
                # no seam inside the window, unlike a circular roll.
                shifted, _ = self._audio(rng, i, a + k, length, y, silence=False)
                misaligned.append(mfcc_rows(shifted, length))
            if c.dubbed:
                own = self._window_audio(i, a * SAMPLES_PER_FRAME, length)
                dubbed = self.donors.dub(rng, own, own_labels, t.identity)
                mfcc_dubbed.append(mfcc_rows(gain_and_noise(dubbed, rng, c), length))
            frames = slice(t.offset + s, t.offset + s + length)
            if self.variants is not None:
                flip = len(self.variants) > 1 and rng.random() < c.flip_prob
                visual.append(np.asarray(self.variants[int(flip)][frames], np.float32))
            else:
                crops = np.asarray(self.corpus.crops[frames])
                augment = rng.random() < c.flip_prob
                visual.append(augment_crops(crops, rng, c.photometric) if augment else crops)
        batch = {
            "visual": np.stack(visual),
            "mfcc": np.stack(mfccs).astype(np.float32),
            "labels": np.stack(labels).astype(np.int64),
        }
        if misaligned:
            batch["mfcc_misaligned"] = np.stack(misaligned).astype(np.float32)
        if mfcc_dubbed:
            batch["mfcc_dubbed"] = np.stack(mfcc_dubbed).astype(np.float32)
        if c.turn_prob > 0:  # for a visual-only head, what the lips do: turns are not seen
            batch["visual_labels"] = np.stack(lips).astype(np.int64)
        return batch


class VoiceDonors:
    """Voices to dub training windows with: the speech of the given tracks, each read from one
    of its onsets (the first frame of a run of labelled speech)."""

    def __init__(self, corpus: Corpus, tracks: list[int]) -> None:
        self.corpus = corpus
        self.onsets: dict[int, np.ndarray] = {}
        for i in tracks:
            t = corpus.tracks[i]
            runs = speech_segments(corpus.labels[t.offset : t.offset + t.length])
            if runs:
                self.onsets[i] = np.array([a for a, _ in runs])
        self.tracks = np.array(sorted(self.onsets))
        self.identities = np.array([corpus.tracks[i].identity for i in self.tracks])

    def dub(
        self, rng: np.random.Generator, audio: np.ndarray, labels: np.ndarray, identity: str
    ) -> np.ndarray:
        """A copy of a window's float audio (frame j = samples 640·j …) whose every run of
        labelled speech is another identity's voice.

        The donor is read from one of its speech onsets on, so the new voice starts where the
        lips start, as a dub does, with no cut into a word (a seam would be a cue real dubs
        lack), at the loudness of the voice it replaces; 10 ms fades join it to the own audio
        around.
        """
        audio = np.array(audio, np.float32)
        donors = self.tracks[self.identities != identity]
        for a, b in speech_segments(labels):
            own = audio[a * SAMPLES_PER_FRAME : b * SAMPLES_PER_FRAME]
            self._splice(rng, audio, a, b, donors, rms(own))
        return audio

    def turn(
        self,
        rng: np.random.Generator,
        audio: np.ndarray,
        labels: np.ndarray,
        identity: str,
        frames: tuple[int, int],
    ) -> tuple[np.ndarray, np.ndarray]:
        """A copy of a window's float audio and labels where another identity takes the floor
        for `frames` (lo, hi) frames, at most half the window: its voice from one of its onsets
        in place of the own audio there, at the loudness of the window's own speech (its own
        level in a window without speech), labelled not speaking."""
        audio, labels = np.array(audio, np.float32), np.array(labels)
        n = len(labels)
        lo, hi = frames
        length = int(rng.integers(min(lo, n // 2), min(hi, n // 2) + 1))
        if length == 0:
            return audio, labels
        a = int(rng.integers(0, n - length + 1))
        loudness = speech_rms(audio, labels)
        self._splice(rng, audio, a, a + length, self.tracks[self.identities != identity], loudness)
        labels[a : a + length] = 0
        return audio, labels

    def talk_over(
        self,
        rng: np.random.Generator,
        audio: np.ndarray,
        labels: np.ndarray,
        identity: str,
        snr_db: float,
    ) -> np.ndarray:
        """A copy of a window's float audio with another identity's voice, from one of its
        onsets, over all of it, `snr_db` below the window's own speech (below its whole RMS in
        a window without speech): two people talking at once, the own voice still there."""
        audio = np.array(audio, np.float32)
        voice = self._voice(rng, self.tracks[self.identities != identity], len(audio))
        level = speech_rms(audio, labels) or rms(audio)
        if level == 0 or rms(voice) == 0:
            return audio
        return mix_noise(audio, voice, snr_db, level).astype(np.float32)

    def _splice(
        self,
        rng: np.random.Generator,
        audio: np.ndarray,
        a: int,
        b: int,
        donors: np.ndarray,
        loudness: float | None,
    ) -> None:
        """Frames [a, b) of `audio`, in place: a donor's voice from one of its onsets at
        `loudness` (RMS; None keeps its own), joined to the audio around by 10 ms fades."""
        need = (b - a) * SAMPLES_PER_FRAME
        voice = self._voice(rng, donors, need)
        if loudness is not None and rms(voice) > 0:
            voice = voice * (loudness / rms(voice))
        fade = min(FADE, need // 2)
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        voice[:fade] *= ramp
        voice[need - fade :] *= ramp[::-1]
        outside = np.zeros(need, np.float32)  # the own audio: only inside the fades
        outside[:fade] = 1 - ramp
        outside[need - fade :] = ramp
        own = audio[a * SAMPLES_PER_FRAME : b * SAMPLES_PER_FRAME]
        audio[a * SAMPLES_PER_FRAME : b * SAMPLES_PER_FRAME] = own * outside + voice

    def _voice(self, rng: np.random.Generator, donors: np.ndarray, samples: int) -> np.ndarray:
        """`samples` of a random donor's audio read from a random one of its speech onsets."""
        donor = int(donors[rng.integers(len(donors))])
        onset = int(rng.choice(self.onsets[donor]))
        return track_audio(self.corpus, donor, onset * SAMPLES_PER_FRAME, samples)


FADE = 160  # samples (10 ms): the cross-fade between a dub's voice and the own audio around it


def mfcc_rows(audio: np.ndarray, frames: int) -> np.ndarray:
    """The 4·frames MFCC rows of a window's float audio (rounded to int16 first)."""
    audio = np.clip(np.round(audio), -32768, 32767).astype(np.int16)
    return mfcc(audio)[: 4 * frames]
