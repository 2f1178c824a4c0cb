"""What ASD models rely on (Sync-TalkNet §3.2, Table 1): remove one cue, measure the mAP.

- silenced audio: every sample zero;
- lips masked: the bottom 30 % of each 112×112 face crop set to zero;
beside the original tracks. The VAD × lip-movement product baseline
(`syncasd.evaluate.baselines`) is scored the same way.

Two degradations of the face (`shrink_face`, `dim`) stand for footage worse than ours: faces a
few dozen pixels tall, dim and noisy video; two of the sound for a noisy room or street
(`noisy`) and for another person talking over the speaker (`talked_over`;
`bench/decision_threshold.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..data.labelled import LabelledTrack
from ..data.samples import mix_noise, pink_noise, rms, seen_at, speech_rms
from ..timebase import SAMPLES_PER_FRAME
from .report import Report
from .tracks import TrackScorer, pooled_map, score_tracks

MASK_FRACTION = 0.3
CONDITIONS = ("original", "silenced audio", "lips masked")


def silence(track: LabelledTrack) -> LabelledTrack:
    return replace(track, audio=np.zeros_like(track.audio))


def mask_lips(track: LabelledTrack, fraction: float = MASK_FRACTION) -> LabelledTrack:
    crops = track.crops.copy()
    crops[:, int(round(crops.shape[1] * (1.0 - fraction))) :] = 0
    return replace(track, crops=crops)


def shrink_face(track: LabelledTrack, pixels: int) -> LabelledTrack:
    """The face as if it were `pixels` tall in the video: each crop downscaled (area
    averaging) and scaled back up to 112 (bilinear), as the crop of a small face is."""
    return replace(track, crops=seen_at(np.asarray(track.crops), pixels))


def dim(track: LabelledTrack, contrast: float = 0.35, noise: float = 6.0) -> LabelledTrack:
    """A dim, noisy camera: gray levels × `contrast` plus Gaussian noise of σ = `noise` gray
    levels (seeded, so every model sees the same frames)."""
    crops = dim_pixels(track.crops, np.random.default_rng(0), contrast, noise)
    return replace(track, crops=crops)


def dim_pixels(
    pixels: np.ndarray, rng: np.random.Generator, contrast: float = 0.35, noise: float = 6.0
) -> np.ndarray:
    """uint8 pixels (crops or whole frames) × `contrast` plus noise of σ = `noise` levels."""
    out = np.asarray(pixels, np.float32) * contrast
    out += rng.normal(0.0, noise, out.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def noisy(track: LabelledTrack, snr_db: float, seed: int = 0) -> LabelledTrack:
    """Pink noise (power ∝ 1/f, as room, traffic and crowd noise roughly are) under the whole
    track, `snr_db` below the track's speech: its RMS over the speaking frames, or over all
    frames if none speaks. Seeded, so every model hears the same noise."""
    noise = pink_noise(len(track.audio), np.random.default_rng(seed))
    return _mixed(track, noise, snr_db)


def talked_over(
    tracks: Sequence[LabelledTrack], snr_db: float, seed: int = 0
) -> list[LabelledTrack]:
    """Each track with another video's voice over it, `snr_db` below its own speech (as
    `noisy`; 0 dB: as loud), the labels kept: crosstalk in a conversation, a debate, a busy
    room, where the face still speaks where it did and its silent frames hear someone else.
    Each donor is a speaking track of another video (seeded: every model hears the same),
    its whole audio looped or cut to the track's length."""
    donors = [i for i, t in enumerate(tracks) if t.labels.any()]
    rng = np.random.default_rng(seed)
    out = []
    for track in tracks:
        others = [i for i in donors if tracks[i].video_id != track.video_id]
        if not others:
            raise ValueError("talking over needs speaking tracks from at least two videos")
        voice = tracks[others[rng.integers(len(others))]].audio.astype(np.float64)
        out.append(_mixed(track, np.resize(voice, len(track.audio)), snr_db))
    return out


def _mixed(track: LabelledTrack, sound: np.ndarray, snr_db: float) -> LabelledTrack:
    """`track` with `sound` added `snr_db` below its speech's RMS (over its speaking frames,
    or all frames if none speaks), as int16."""
    audio = track.audio.astype(np.float64)
    frames = audio[: len(track) * SAMPLES_PER_FRAME]
    level = speech_rms(frames, track.labels) or rms(frames)
    mixed = mix_noise(audio, sound, snr_db, level)
    return replace(track, audio=np.clip(np.rint(mixed), -32768, 32767).astype(np.int16))


@dataclass
class AblationResult:
    model: str
    maps: dict[str, float] = field(default_factory=dict)  # condition → mAP (%)


def ablate(
    scorer: TrackScorer,
    tracks: Sequence[LabelledTrack],
    name: str,
    original: list[np.ndarray] | None = None,
) -> AblationResult:
    """mAP per condition; `original`: the scorer's scores of the tracks, if known."""
    labels = [t.labels for t in tracks]
    scores = {
        "original": original if original is not None else score_tracks(scorer, tracks),
        "silenced audio": score_tracks(scorer, [silence(t) for t in tracks]),
        "lips masked": score_tracks(scorer, [mask_lips(t) for t in tracks]),
    }
    return AblationResult(name, {c: pooled_map(labels, scores[c]) for c in CONDITIONS})


def report(tracks: Sequence[LabelledTrack], results: Sequence[AblationResult]) -> Report:
    r = Report("Ablations: silenced audio, masked lips, VAD × lip movement")
    n_frames = sum(len(t) for t in tracks)
    n_pos = sum(int(t.labels.sum()) for t in tracks)
    r.text(
        f"{len(tracks)} face tracks, {n_frames} frames, {n_pos} labelled speaking. mAP (%) "
        "pooled over all face-frames. Silenced: every audio sample zero. Lips masked: the "
        f"bottom {MASK_FRACTION:.0%} of each 112×112 face crop zeroed."
    )
    r.table(["model", *CONDITIONS], [[res.model, *res.maps.values()] for res in results])
    _, ax = r.figure("ablations", "mAP with each cue removed", size=(7.0, 4.0))
    width = 0.8 / len(CONDITIONS)
    x = np.arange(len(results))
    for k, condition in enumerate(CONDITIONS):
        ax.bar(x + k * width, [res.maps[condition] for res in results], width, label=condition)
    ax.set_xticks(x + width * (len(CONDITIONS) - 1) / 2, [res.model for res in results])
    ax.set_ylabel("mAP (%)")
    ax.set_ylim(0, 100)
    ax.legend()
    return r
