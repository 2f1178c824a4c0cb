"""Mismatched and misaligned twins, checked sample by sample on tracks with traceable audio."""

from __future__ import annotations

import numpy as np
import pytest

from syncasd.data.labelled import LabelledTrack
from syncasd.data.unsync import MIN_SHIFT_FRAMES, misalign, mismatch


def track(video: str, labels: list[int], base: int) -> LabelledTrack:
    """Sample i of the track holds base + i, so every sample says where it came from."""
    n = len(labels)
    audio = (base + np.arange(n * 640)).astype(np.int64)
    crops = np.zeros((n, 112, 112), np.uint8)
    return LabelledTrack(
        video, f"{video}:0", crops, audio, np.array(labels, bool), np.arange(n) / 25
    )


@pytest.fixture
def tracks() -> list[LabelledTrack]:
    return [
        track("a", [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0], 0),
        track("b", [1] * 20, 100_000),
        track("c", [0] * 6, 200_000),  # never speaks
        track("a", [1] * 9 + [0], 300_000),  # same video as the first track
    ]


def test_mismatch_replaces_speaking_audio_with_another_videos_speech(tracks):
    twins = mismatch(tracks, np.random.default_rng(0))
    first = twins[0]
    # Outside the speaking segment: untouched; inside: labels off, audio from video b only
    # (c never speaks and the fourth track is the same video).
    np.testing.assert_array_equal(first.audio[: 2 * 640], tracks[0].audio[: 2 * 640])
    np.testing.assert_array_equal(first.audio[12 * 640 :], tracks[0].audio[12 * 640 :])
    inside = first.audio[2 * 640 : 12 * 640]
    assert ((inside >= 100_000) & (inside < 100_000 + 20 * 640)).all()
    assert np.all(np.diff(inside) == 1)  # one contiguous stretch of b's speech
    assert first.labels.sum() == 0
    assert twins[2] is tracks[2]  # no speech: nothing to mismatch
    for twin, original in zip(twins, tracks, strict=True):
        assert twin.audio.shape == original.audio.shape
        np.testing.assert_array_equal(twin.crops, original.crops)


def test_mismatch_repeats_a_shorter_donor(tracks):
    twin = mismatch(tracks, np.random.default_rng(1))[1]  # b: 20 frames; donors are 10 and 9
    assert not twin.labels.any()
    values = twin.audio
    assert ((values < 100_000) | (values >= 300_000)).all()  # never its own voice
    assert len(np.unique(values)) < len(values)  # the shorter donor segment loops


def test_dubbed_twins_keep_their_labels(tracks):
    twins = mismatch(tracks, np.random.default_rng(0), keep_labels=True)
    for twin, original in zip(twins, tracks, strict=True):
        np.testing.assert_array_equal(twin.labels, original.labels)
    assert not np.array_equal(twins[1].audio, tracks[1].audio)


def test_misalign_shifts_each_segment_circularly_by_more_than_125_ms(tracks):
    twins = misalign(tracks, np.random.default_rng(0))
    for twin, original in zip(twins, tracks, strict=True):
        for a, b in original.segments():
            piece = original.audio[a * 640 : b * 640]
            shifted = twin.audio[a * 640 : b * 640]
            n = b - a
            if n < 2 * MIN_SHIFT_FRAMES:
                np.testing.assert_array_equal(shifted, piece)
                continue
            shift = (int(shifted[0] - piece[0]) // 640 * -1) % n  # frames rolled to the right
            np.testing.assert_array_equal(shifted, np.roll(piece, shift * 640))
            assert MIN_SHIFT_FRAMES <= shift <= n - MIN_SHIFT_FRAMES  # ≥ 160 ms either way
            assert not twin.labels[a:b].any()
        outside = ~original.labels
        np.testing.assert_array_equal(twin.labels[outside], original.labels[outside])


def test_short_segments_cannot_be_misaligned_and_stay_positive():
    short = track("s", [0, 1, 1, 1, 1, 1, 1, 1, 0], 0)  # 7 frames < 8
    twin = misalign([short], np.random.default_rng(0))[0]
    np.testing.assert_array_equal(twin.audio, short.audio)
    np.testing.assert_array_equal(twin.labels, short.labels)


def test_same_seed_same_twins(tracks):
    one = mismatch(tracks, np.random.default_rng(7))
    two = mismatch(tracks, np.random.default_rng(7))
    other = mismatch(tracks, np.random.default_rng(8))
    for x, y in zip(one, two, strict=True):
        np.testing.assert_array_equal(x.audio, y.audio)
    assert any(not np.array_equal(x.audio, z.audio) for x, z in zip(one, other, strict=True))


def test_mismatch_needs_a_second_video():
    with pytest.raises(ValueError, match="two videos"):
        mismatch([track("a", [1] * 5, 0), track("a", [1] * 5, 10_000)], np.random.default_rng(0))
