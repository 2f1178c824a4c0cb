"""The unsynchronization test on real tracks with Light-ASD: numbers and the report."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import needs_shared

from syncasd.evaluate.unsync import UnsyncTest, report

pytestmark = needs_shared


@pytest.fixture(scope="module")
def test_and_result(eval_tracks, light_asd_scorer):
    test = UnsyncTest(eval_tracks, seed=0)
    return test, test.run(light_asd_scorer, "light-asd")


def test_sets_are_nested_and_the_same_size(eval_tracks, test_and_result):
    test, _ = test_and_result
    chosen = [set(test.chosen(s).tolist()) for s in test.shares]
    assert [len(c) for c in chosen] == [0, 2, 4, 5, 7]  # of 7 tracks: round(share · 7)
    assert all(a <= b for a, b in zip(chosen, chosen[1:], strict=False))
    again = UnsyncTest(eval_tracks, seed=0)
    assert again.order.tolist() == test.order.tolist()
    for x, y in zip(again.twins["mismatch"], test.twins["mismatch"], strict=True):
        np.testing.assert_array_equal(x.audio, y.audio)


def test_light_asd_falls_as_unsynchronized_tracks_grow(test_and_result):
    _, result = test_and_result
    mismatch, misalign = result.maps["mismatch"], result.maps["misalign"]
    assert mismatch[0] == misalign[0]  # 0 %: the original tracks
    # Measured at 0, 25, 50, 75 %: Light-ASD calls the unsynchronized speech speaking.
    assert mismatch[:4] == pytest.approx([90.94, 85.60, 81.93, 50.70], abs=0.5)
    assert misalign[:4] == pytest.approx([90.94, 85.22, 76.38, 47.01], abs=0.5)
    # 100 %: every speaking segment mismatched, nothing is labelled speaking: undefined. Only
    # a 4-frame segment (too short to shift by 160 ms) is left speaking among the misaligned.
    assert math.isnan(mismatch[4])
    assert misalign[4] == pytest.approx(0.87, abs=0.3)


def test_report(test_and_result, tmp_path):
    test, result = test_and_result
    path = report(test, [result]).save(tmp_path)
    text = path.read_text()
    assert "7 face tracks from 7 videos" in text
    assert "| light-asd | mismatch | " in text and "n/a" in text
    for kind in ("mismatch", "misalign"):
        assert (tmp_path / f"map_vs_share_{kind}.png").read_bytes()[:4] == b"\x89PNG"
