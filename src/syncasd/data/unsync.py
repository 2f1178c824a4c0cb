"""The seeds' unsynchronized versions of labelled face tracks (Sync-TalkNet §3.1).

- Mismatched: the audio of each speaking segment is replaced by a random speaking segment of a
  track from another video. Lips move and a voice speaks, but not this voice: label negative.
- Misaligned: the audio of each speaking segment is circularly shifted within the segment by
  more than 125 ms (the threshold at which people notice a delay): label negative.

Not-speaking frames keep their audio and labels. Everything is drawn from the `rng` given, so a
seed fixes the result.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..timebase import SAMPLES_PER_FRAME
from .labelled import LabelledTrack

# The smallest shift, in whole frames: 4 frames = 160 ms > 125 ms. A circular shift by k frames
# is also a shift by L − k the other way, so both must reach it: segments shorter than 8 frames
# cannot be misaligned and stay as they are (still positive).
MIN_SHIFT_FRAMES = 4


def mismatch(
    tracks: list[LabelledTrack], rng: np.random.Generator, keep_labels: bool = False
) -> list[LabelledTrack]:
    """Mismatched twin of every track (tracks without speech come back unchanged).

    `keep_labels` leaves the speaking labels on, as annotators label a dubbed film: the
    material of the dubbing test.
    """
    donors = [
        (i, a, b) for i, t in enumerate(tracks) for a, b in t.segments()
    ]  # every speaking segment, by track
    out = []
    for track in tracks:
        segments = track.segments()
        if not segments:
            out.append(track)
            continue
        others = [d for d in donors if tracks[d[0]].video_id != track.video_id]
        if not others:
            raise ValueError("mismatching needs speaking segments from at least two videos")
        audio, labels = track.audio.copy(), track.labels.copy()
        for a, b in segments:
            j, da, db = others[rng.integers(len(others))]
            voice = tracks[j].audio[da * SAMPLES_PER_FRAME : db * SAMPLES_PER_FRAME]
            need = (b - a) * SAMPLES_PER_FRAME
            if len(voice) > need:  # a random stretch of a longer segment
                off = int(rng.integers(len(voice) - need + 1))
                voice = voice[off : off + need]
            else:  # a shorter one repeats
                voice = np.resize(voice, need)
            audio[a * SAMPLES_PER_FRAME : b * SAMPLES_PER_FRAME] = voice
            labels[a:b] = keep_labels
        out.append(replace(track, audio=audio, labels=labels))
    return out


def misalign(tracks: list[LabelledTrack], rng: np.random.Generator) -> list[LabelledTrack]:
    """Misaligned twin of every track: each speaking segment's own audio circularly shifted."""
    out = []
    for track in tracks:
        audio, labels = track.audio.copy(), track.labels.copy()
        for a, b in track.segments():
            n = b - a
            if n < 2 * MIN_SHIFT_FRAMES:
                continue
            shift = int(rng.integers(MIN_SHIFT_FRAMES, n - MIN_SHIFT_FRAMES + 1))
            piece = audio[a * SAMPLES_PER_FRAME : b * SAMPLES_PER_FRAME]
            audio[a * SAMPLES_PER_FRAME : b * SAMPLES_PER_FRAME] = np.roll(
                piece, shift * SAMPLES_PER_FRAME
            )
            labels[a:b] = False
        out.append(replace(track, audio=audio, labels=labels))
    return out
