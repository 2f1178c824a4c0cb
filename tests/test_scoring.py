"""Streaming scorers with the real Light-ASD weights on the fixture face track of clip 014."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import FIXTURES, needs_shared
from torch import nn

from syncasd.scoring import ChunkScorer, DemoScorer, demo_smoothing, run_model, softmax1

# `light_asd` (conftest) is the real model behind an exact-input memo: chunks already scored
# elsewhere are not scored again, and `misses` shows which chunks a scorer really asked for.

INPUTS = FIXTURES / "inputs"


def _push_in_slices(scorer, crops: np.ndarray, size: int):
    for i in range(0, len(crops), size):
        scorer.push(crops[i : i + size])
    return scorer.finish()


# --- demo_smoothing ---------------------------------------------------------------------------


def test_demo_smoothing_hand_computed():
    scores = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    # Frame f averages scores[max(f-2, 0) : min(f+3, N-1)]: the last score (6) never counts,
    # and frame 6, past the scored frames, averages score N-2 alone.
    expected = [2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0]
    np.testing.assert_allclose(demo_smoothing(scores, 7), expected)


def test_demo_smoothing_columns_independently():
    scores = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])
    # N = 4: every window ends at index 3, so the last score (4, 40) is never averaged.
    expected = [[2, 20], [2, 20], [2, 20], [2.5, 25]]
    np.testing.assert_allclose(demo_smoothing(scores, 4), expected)


def test_softmax1():
    logits = np.array([[0.0, 0.0], [1.0, 3.0], [2.0, -1.0]])
    np.testing.assert_allclose(softmax1(logits), [0.5, 1 / (1 + np.exp(-2)), 1 / (1 + np.exp(3))])


# --- DemoScorer -------------------------------------------------------------------------------


@needs_shared
@pytest.mark.parametrize("push", [100, 7, 1])  # 100 first: it fills the memo if empty
def test_demo_scorer_reproduces_demo(light_asd, gray, mfcc_full, push):
    reference = torch.load(FIXTURES / "lightasd" / "lightasd_demo_scores.pt", weights_only=True)
    # The demo crops the track's audio to 100 × 640 samples (399 MFCC rows → 3.96 s), so it
    # scores 99 frames; the smoothing then gives frame 99 the value of frame 98's neighbours.
    mean = reference["trackcut_T100"]["mean_unrounded"].numpy()
    expected = demo_smoothing(mean, 100)

    misses = light_asd.misses
    logits, probs = _push_in_slices(DemoScorer(light_asd, mfcc_full, start=0), gray[:100], push)

    assert logits.shape == probs.shape == (100,)
    np.testing.assert_allclose(logits, expected, atol=1e-5, rtol=0)
    assert np.all((probs > 0) & (probs < 1))
    if push != 100:
        assert light_asd.misses == misses, "slicing the pushes changed the chunks scored"


# --- ChunkScorer ------------------------------------------------------------------------------

START = 50  # the track starts at model frame 50 of the clip; MFCC rows start at 4·50
LENGTH = 60
WINDOW, CONTEXT = 30, 5


@needs_shared
def test_chunk_scorer_window_longer_than_track_is_one_pass(light_asd, gray, mfcc_full):
    crops = gray[START : START + LENGTH]
    expected = run_model(light_asd, crops, mfcc_full[4 * START : 4 * (START + LENGTH)])

    logits, probs = _push_in_slices(ChunkScorer(light_asd, mfcc_full, START), crops, LENGTH)

    np.testing.assert_array_equal(logits, expected[:, 1])
    np.testing.assert_array_equal(probs, softmax1(expected))


@needs_shared
def test_chunk_scorer_stitches_overlapping_windows(light_asd, gray, mfcc_full):
    crops = gray[START : START + LENGTH]

    def window(a: int, b: int) -> np.ndarray:
        rows = mfcc_full[4 * (START + a) : 4 * (START + b)]
        return run_model(light_asd, crops[a:b], rows)[:, 1]

    # Windows of 30 advance by 30 − 2·5 = 20 frames; each keeps its frames up to 5 before its
    # end. Window [0, 30) gives 0..24, [20, 50) gives 25..44, the final [40, 60) gives 45..59.
    expected = np.concatenate([window(0, 30)[:25], window(20, 50)[5:25], window(40, 60)[5:]])

    logits, _ = _push_in_slices(
        ChunkScorer(light_asd, mfcc_full, START, window=WINDOW, context=CONTEXT), crops, LENGTH
    )

    assert logits.shape == (LENGTH,)
    np.testing.assert_array_equal(logits, expected)


@needs_shared
@pytest.mark.parametrize("push", [1, 13])
def test_chunk_scorer_push_granularity(light_asd, gray, mfcc_full, push):
    crops = gray[START : START + LENGTH]

    def score(size: int):
        scorer = ChunkScorer(light_asd, mfcc_full, START, window=WINDOW, context=CONTEXT)
        return _push_in_slices(scorer, crops, size)

    whole_logits, whole_probs = score(LENGTH)
    misses = light_asd.misses
    logits, probs = score(push)

    np.testing.assert_array_equal(logits, whole_logits)
    np.testing.assert_array_equal(probs, whole_probs)
    assert light_asd.misses == misses, "slicing the pushes changed the windows scored"


def test_chunk_scorer_rejects_window_without_core():
    with pytest.raises(ValueError, match="window"):
        ChunkScorer(nn.Linear(1, 1), np.zeros((0, 13)), 0, window=50, context=25)


def test_track_ending_with_the_audio_gets_whole_frames_of_mfcc():
    """n frames of 16 kHz audio give 4n − 1 MFCC rows; a model that needs 4 rows per frame
    (RothNet reshapes them per frame) still scores the last window."""
    from syncasd.audio import mfcc
    from syncasd.models.rothnet import RothNet

    torch.manual_seed(0)
    model = RothNet().eval()
    rng = np.random.default_rng(0)
    features = mfcc(rng.integers(-3000, 3000, 20 * 640).astype(np.int16))
    assert len(features) == 79
    scorer = ChunkScorer(model, features, start=0, window=150, context=25)
    scorer.push(rng.integers(0, 256, (20, 112, 112), dtype=np.uint8))
    logits, probs = scorer.finish()
    assert logits.shape == probs.shape == (20,)
    assert np.isfinite(logits).all()
