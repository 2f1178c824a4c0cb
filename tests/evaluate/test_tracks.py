"""Scoring labelled tracks: the same probabilities `detect` reports, and the pooled mAP."""

from __future__ import annotations

import math

import numpy as np
from conftest import DATA, needs_shared

from syncasd.evaluate.tracks import pooled_map


def test_pooled_map_by_hand():
    # Ranked: 0.9 (speaking), 0.8 (not), 0.1 (speaking): precision 1 at recall 1/2, 2/3 at 1.
    value = pooled_map(
        [np.array([1, 0], bool), np.array([1], bool)], [np.array([0.9, 0.8]), np.array([0.1])]
    )
    assert math.isclose(value, 100 * (0.5 * 1 + 0.5 * 2 / 3))


def test_pooled_map_without_positives_is_undefined():
    assert math.isnan(pooled_map([np.zeros(3, bool)], [np.array([0.1, 0.5, 0.9])]))


@needs_shared
def test_a_track_scores_as_detect_scored_it(eval_tracks, light_asd_scorer):
    import syncasd

    clip = DATA / "clips" / "vasp" / "ID1" / "014.mp4"
    result = syncasd.detect(
        clip, model="light-asd", weights=str(DATA / "weights" / "light_asd_ava.model"), duration=4.0
    )
    track = next(t for t in eval_tracks if t.video_id == "ID1/014")
    assert result.tracks[0].start == 0 and len(result.tracks[0].frames) == len(track)
    np.testing.assert_allclose(
        light_asd_scorer(track.crops, track.audio), result.tracks[0].probs, atol=1e-5
    )
