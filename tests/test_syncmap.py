"""Sync analysis on tiny matrices whose answers are worked out by hand (IC-SyncNet App. D, E)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SYNC_TRACK_KEYS
from scipy.special import expit, logit

from syncasd.errors import InputError
from syncasd.syncmap import (
    VOTE_MIN_PROB,
    Chunk,
    SegmentOffset,
    SyncParams,
    TrackSync,
    VideoSync,
    analyze_track,
    clean_islands_archipelagos,
    connected_chunks,
    drift_ms_per_min,
    drop_weak_chunks,
    estimate_offset,
    find_archipelagos,
    find_islands,
    gaussian_smooth,
    masked_offset,
    mean_curve,
    offscreen_ratio,
    offset_at_start,
    offset_confidence,
    overall_prob,
    plot_offset_map,
    prob_at_offset,
    refined_offset,
    segment_offsets,
    smooth_probs,
    speaking_from_sync,
    threshold_frames,
    video_offset,
    window_max,
)

# exp(-j²/2) for j = -2..2, normalised: sigma 1, radius 2.
G = np.array([0.05448868, 0.24420134, 0.40261995, 0.24420134, 0.05448868])
L9 = float(logit(0.9))  # 2.1972…


def rows(*curves: list[float]) -> np.ndarray:
    return np.array(curves, dtype=float)


def const_probs(values: list[float], t: int) -> np.ndarray:
    """(len(values), t): row i is values[i] at every frame."""
    return np.repeat(np.array(values, dtype=float)[:, None], t, axis=1)


# --- offset and confidence -------------------------------------------------------------------


def test_offset_is_argmax_of_mean_over_time():
    # K = 2; means over time: 0.2, 0.3, 0.5, 0.7, 0.1 → k = +1.
    p = rows([0.2, 0.2], [0.3, 0.3], [0.4, 0.6], [0.6, 0.8], [0.1, 0.1])
    np.testing.assert_allclose(mean_curve(p), [0.2, 0.3, 0.5, 0.7, 0.1])
    assert estimate_offset(p) == 1


def test_offset_ties_go_to_smallest_abs_k():
    # Means 0.8 at k = -2 and k = +1 → +1.
    p = const_probs([0.8, 0.1, 0.1, 0.8, 0.1], 3)
    assert estimate_offset(p) == 1
    # Means equal only up to rounding (0.1+0.2+0.3 vs 0.3+0.2+0.1) still tie: k = -2 vs 0 → 0.
    p = rows([0.1, 0.2, 0.3], [0.0, 0.0, 0.0], [0.3, 0.2, 0.1], [0, 0, 0], [0, 0, 0])
    assert estimate_offset(p) == 0
    # An exact ±1 tie goes to -1.
    assert estimate_offset(const_probs([0.1, 0.9, 0.5, 0.9, 0.1], 2)) == -1


def test_offset_logit_average_can_differ_from_prob_average():
    # k=-1 row: 0.99 and 0.01 → mean prob 0.5, mean logit 0.
    # k=+1 row: 0.45 twice → mean prob 0.45, mean logit -0.2007. k=0: 0.3 → -0.847.
    p = rows([0.99, 0.01], [0.3, 0.3], [0.45, 0.45])
    assert estimate_offset(p, "prob") == -1
    p = rows([0.999, 0.0001], [0.3, 0.3], [0.45, 0.45])  # mean logit (6.9 - 9.2)/2 < -0.2
    assert estimate_offset(p, "prob") == -1
    assert estimate_offset(p, "logit") == 1


def test_masked_offset_averages_logits_over_the_masked_cells_only():
    # K = 1, three frames. Mean logits over all frames: k = −1 (2.20 + 2.20 − 4.60) / 3 =
    # −0.07, k = 0 0.41, k = +1 0.85 → +1; without frame 2, k = −1's 2.20 leads. A (T,) mask
    # serves every row alike.
    p = rows([0.9, 0.9, 0.01], [0.6, 0.6, 0.6], [0.7, 0.7, 0.7])
    assert masked_offset(p, np.ones(3, bool)) == 1
    assert masked_offset(p, np.array([True, True, False])) == -1
    # A (2K+1, T) mask: a row needs min_cells cells to be a candidate.
    cells = np.array([[True, False, False], [True, True, True], [False, False, False]])
    assert masked_offset(p, cells) == -1  # logit 0.9 on its one cell
    assert masked_offset(p, cells, min_cells=2) == 0
    assert masked_offset(p, np.zeros(3, bool)) is None


def test_confidence_is_peak_minus_median_of_mean_curve():
    # Mean curve 0.1, 0.2, 0.9, 0.3, 0.1: median 0.2, peak 0.9 → 0.7.
    p = rows([0.1, 0.1], [0.1, 0.3], [0.8, 1.0], [0.3, 0.3], [0.0, 0.2])
    assert offset_confidence(p) == pytest.approx(0.7)
    assert offset_confidence(const_probs([0.4] * 5, 4)) == pytest.approx(0.0)


def test_prob_at_offset_is_the_raw_row():
    p = rows([0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9])
    np.testing.assert_allclose(prob_at_offset(p, -1), [0.1, 0.2, 0.3])
    np.testing.assert_allclose(prob_at_offset(p, 1), [0.7, 0.8, 0.9])
    with pytest.raises(InputError):
        prob_at_offset(p, 2)


def _synthetic(delay: int, k: int = 6, t: int = 80, seed: int = 0) -> np.ndarray:
    """probs for a clip whose audio is delayed by `delay` frames: the audio at frame t carries
    the speech the lips made at frame t - delay; row k pairs lips t with audio t + k."""
    rng = np.random.default_rng(seed)
    margin = k + abs(delay) + 1
    speech = rng.normal(size=(t + 2 * margin, 16))
    speech /= np.linalg.norm(speech, axis=1, keepdims=True)
    lips = lambda i: speech[i + margin]  # noqa: E731
    audio = lambda i: speech[i - delay + margin]  # noqa: E731
    p = np.empty((2 * k + 1, t))
    for shift in range(-k, k + 1):
        for i in range(t):
            p[shift + k, i] = expit(8.0 * float(lips(i) @ audio(i + shift)) - 2.0)
    return p


@pytest.mark.parametrize("delay", [3, -2, 0])
def test_sign_convention_delayed_audio_gives_positive_offset(delay):
    p = _synthetic(delay)
    assert estimate_offset(p) == delay
    result = analyze_track(p, track_id=7)
    assert result.offset_frames == delay
    assert result.offset_ms == 40.0 * delay
    # In sync everywhere at the true offset: every frame is speaking, nothing is off-screen.
    assert result.offscreen_ratio == 0.0
    assert result.speaking.all()
    assert result.in_sync is (abs(delay) <= 1)


# --- Appendix D, step by step ----------------------------------------------------------------


def test_gaussian_smoothing_of_a_delta_is_the_kernel():
    x = np.zeros(9)
    x[4] = 1.0
    out = gaussian_smooth(x, sigma=1.0, radius=2)
    np.testing.assert_allclose(out, [0, 0, *G, 0, 0], atol=1e-8)
    assert out.sum() == pytest.approx(1.0)
    # At the track edge the first frame repeats: a delta at frame 0 keeps G0 + G1 + G2 there.
    edge = gaussian_smooth(np.eye(1, 6)[0], 1.0, 2)
    np.testing.assert_allclose(edge[:3], [G[0] + G[1] + G[2], G[0] + G[1], G[0]], atol=1e-8)
    # Along time (axis 1) only: every offset row is smoothed on its own.
    m = np.zeros((3, 9))
    m[1, 4] = 1.0
    np.testing.assert_allclose(gaussian_smooth(m, 1.0, 2, axis=1)[1], [0, 0, *G, 0, 0], atol=1e-8)
    assert np.all(gaussian_smooth(m, 1.0, 2, axis=1)[[0, 2]] == 0)


def test_smoothing_works_on_logits():
    # Logit 4 at the centre frame, 0 elsewhere: smoothed logit 4 × 0.40262 = 1.61048.
    p = np.full((1, 7), 0.5)
    p[0, 3] = expit(4.0)
    s = smooth_probs(p)
    assert s[0, 3] == pytest.approx(expit(4 * G[2]), abs=1e-7)
    assert s[0, 3] == pytest.approx(0.83347, abs=1e-5)
    assert s[0, 1] == pytest.approx(expit(4 * G[0]), abs=1e-7)
    # A constant row stays constant (edges repeat the last frame).
    np.testing.assert_allclose(smooth_probs(const_probs([0.9], 6)), 0.9)


def test_window_max_around_offset():
    # K = 2, offset +1, window 1 → rows k = 0, 1, 2 (indices 2, 3, 4).
    p = rows(
        [0.99, 0.99, 0.99],  # k = -2: outside the window
        [0.1, 0.2, 0.3],  # k = -1
        [0.6, 0.1, 0.2],  # k = 0
        [0.5, 0.7, 0.1],  # k = +1
        [0.4, 0.3, 0.8],  # k = +2
    )
    np.testing.assert_allclose(window_max(p, 1, 1), [0.6, 0.7, 0.8])
    np.testing.assert_allclose(window_max(p, 1, 0), [0.5, 0.7, 0.1])
    # At the edge the window is clipped: offset +2 → rows k = +1, +2.
    np.testing.assert_allclose(window_max(p, 2, 1), [0.5, 0.7, 0.8])
    # offset -2 → rows k = -2, -1 (not a wrap-around to k = +2).
    np.testing.assert_allclose(window_max(p, -2, 1), [0.99, 0.99, 0.99])
    np.testing.assert_allclose(window_max(p[1:4], -1, 1), [0.6, 0.2, 0.3])  # K = 1 → k = -1, 0


def test_threshold_components_and_chunk_threshold():
    p = np.array([0.9, 0.8, 0.2, 0.75, 0.55, 0.1, 0.95, 0.9, 0.85, 0.3])
    cand = threshold_frames(p, 0.5)
    assert cand.tolist() == [1, 1, 0, 1, 1, 0, 1, 1, 1, 0]
    assert connected_chunks(cand) == [
        Chunk(0, 2, True),
        Chunk(2, 3, False),
        Chunk(3, 5, True),
        Chunk(5, 6, False),
        Chunk(6, 9, True),
        Chunk(9, 10, False),
    ]
    # Chunk means 0.85, 0.65, 0.9: the middle one is below 0.7 (its peak 0.75 is not) and goes;
    # its off neighbours merge with it into one chunk 2..6.
    kept = drop_weak_chunks(cand, p, 0.7)
    assert kept.tolist() == [1, 1, 0, 0, 0, 0, 1, 1, 1, 0]
    assert connected_chunks(kept) == [
        Chunk(0, 2, True),
        Chunk(2, 6, False),
        Chunk(6, 9, True),
        Chunk(9, 10, False),
    ]
    assert drop_weak_chunks(cand, p, 0.5).tolist() == cand.tolist()
    assert threshold_frames(np.array([0.5]), 0.5).tolist() == [False]  # strictly above
    assert connected_chunks(np.zeros(0, bool)) == []


def test_islands_and_archipelagos():
    # T×6 | F×2 (island) | T×5 | F×1 T×2 F×1 (archipelago) | T×6 | F×6
    mask = np.array([1] * 6 + [0] * 2 + [1] * 5 + [0, 1, 1, 0] + [1] * 6 + [0] * 6, bool)
    assert find_islands(mask, 4) == [Chunk(6, 8, False)]
    assert find_archipelagos(mask, 4) == [Chunk(13, 17, False)]
    out = clean_islands_archipelagos(mask, 4)
    assert connected_chunks(out) == [
        Chunk(0, 13, True),
        Chunk(13, 17, False),
        Chunk(17, 23, True),
        Chunk(23, 29, False),
    ]
    # With min_size 2 the 2-frame chunks are large: only the 1-frame chunks are islands.
    assert find_islands(mask, 2) == [Chunk(13, 14, False), Chunk(16, 17, False)]
    assert find_archipelagos(mask, 2) == []


def test_island_at_track_edge_and_lone_small_track():
    # F×2 at the start next to T×6: merged into its only neighbour.
    mask = np.array([0, 0] + [1] * 6, bool)
    assert find_islands(mask, 4) == [Chunk(0, 2, False)]
    assert clean_islands_archipelagos(mask, 4).all()
    # A blip of speech at the end of a silent track is dropped.
    mask = np.array([0] * 6 + [1], bool)
    assert not clean_islands_archipelagos(mask, 4).any()
    # A whole track shorter than min_size has no neighbour: left as it is.
    assert clean_islands_archipelagos(np.ones(3, bool), 4).all()


def test_speaking_from_sync_on_a_step():
    # K = 1; at k = +1 the face is in sync (0.9) for frames 0..5, then someone else speaks (0.1).
    p = const_probs([0.1, 0.1, 0.1], 10)
    p[2, :6] = 0.9
    r = speaking_from_sync(p)
    assert r.offset == 1
    # Smoothed logit at frame 5: L9·(G0+G1+G2) - L9·(G3+G4) = L9·G2 → p = 0.7083;
    # frame 4: L9·(1 - 2·G4) → 0.8763; frame 6: -L9·G2 → off.
    assert r.p_max[5] == pytest.approx(expit(L9 * G[2]), abs=1e-6)
    assert r.p_max[4] == pytest.approx(expit(L9 * (1 - 2 * G[4])), abs=1e-6)
    assert r.p_max[3] == pytest.approx(0.9)
    assert r.mask.tolist() == [True] * 6 + [False] * 4
    assert r.segments == [(0, 6)]
    assert r.islands == [] and r.archipelagos == []


def test_speaking_from_sync_drops_weak_and_noisy_regions():
    # 30 frames at offset 0 (K = 0): a clear 10-frame turn, a weak 6-frame chunk (0.6 < 0.7)
    # and a flickering region that becomes an archipelago.
    row = [0.95] * 10 + [0.05] * 5 + [0.6] * 6 + [0.05] * 5 + [0.95, 0.95, 0.05, 0.05]
    p = np.array([row])
    r = speaking_from_sync(p, params=SyncParams(sigma=0.01, radius=0))  # no smoothing
    assert r.candidates.tolist() == [v > 0.5 for v in row]
    # The weak chunk 15..21 is dropped (step 6), so frames 10..26 are one off chunk; the 2-frame
    # turn 26..28 and the 2 off frames after it are consecutive small chunks: an archipelago.
    assert r.archipelagos == [Chunk(26, 30, False)]
    assert r.segments == [(0, 10)]
    # Without step 7 the 2-frame turn survives.
    r = speaking_from_sync(p, params=SyncParams(sigma=0.01, radius=0, clean=False))
    assert r.segments == [(0, 10), (26, 28)]


# --- Appendix E metrics ----------------------------------------------------------------------


def test_offscreen_ratio_all_frames_and_speech_frames():
    p_max = np.array([0.9, 0.9, 0.2, 0.3, 0.8, 0.1])
    # Not in sync: frames 2, 3, 5 → 3 / 6.
    assert offscreen_ratio(p_max, 0.5) == pytest.approx(0.5)
    # Speech on frames 0, 1, 2, 4: only frame 2 is unexplained → 1 / 4.
    speech = np.array([1, 1, 1, 0, 1, 0], bool)
    assert offscreen_ratio(p_max, 0.5, speech) == pytest.approx(0.25)
    assert offscreen_ratio(p_max, 0.5, np.zeros(6, bool)) == 0.0
    with pytest.raises(InputError):
        offscreen_ratio(p_max, 0.5, np.ones(5, bool))


def test_probability_at_offset_is_sigmoid_of_mean_logit():
    p_max = expit(np.array([2.0, -1.0, 2.0]))  # mean logit 1 → 0.7311 (mean prob 0.6768)
    assert overall_prob(p_max) == pytest.approx(expit(1.0))
    assert overall_prob(p_max) == pytest.approx(0.731059, abs=1e-6)


def test_analyze_track_clean_speaker():
    p = const_probs([0.1, 0.1, 0.1, 0.9, 0.1], 10)  # K = 2, in sync at +1 all along
    r = analyze_track(p, track_id=3)
    assert r.offset_frames == 1 and r.offset_ms == 40.0
    assert r.confidence == pytest.approx(0.8)  # curve 0.1 0.1 0.1 0.9 0.1
    assert r.prob_at_offset == pytest.approx(0.9)
    assert r.offscreen_ratio == 0.0
    assert r.in_sync is True
    np.testing.assert_allclose(r.frame_probs, 0.9)
    assert r.segments == [(0, 10)]


def test_analyze_track_offscreen_speaker():
    # As in test_speaking_from_sync_on_a_step: in sync 6 of 10 frames.
    p = const_probs([0.1, 0.1, 0.1], 10)
    p[2, :6] = 0.9
    r = analyze_track(p, track_id="face-2")
    assert r.offset_frames == 1
    assert r.confidence == pytest.approx(0.58 - 0.1)  # row means 0.1, 0.1, 0.58
    assert r.offscreen_ratio == pytest.approx(0.4)
    # Smoothed logits (edges repeat) sum to 6·L9 - 4·L9 over 10 frames → mean 0.2·L9.
    assert r.prob_at_offset == pytest.approx(expit(0.2 * L9), abs=1e-6)
    assert r.prob_at_offset == pytest.approx(0.60813, abs=1e-5)
    assert r.in_sync is False  # ratio 0.4 > 0.2
    assert analyze_track(p, params=SyncParams(max_offscreen_ratio=0.5)).in_sync is True
    # With a VAD mask saying only frames 0..6 have speech: 1 unexplained frame of 7.
    speech = np.array([1] * 7 + [0] * 3, bool)
    assert analyze_track(p, speech=speech).offscreen_ratio == pytest.approx(1 / 7)


def test_analyze_track_large_offset_is_not_in_sync():
    p = const_probs([0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.95], 8)  # K = 3, peak at +3
    r = analyze_track(p)
    assert r.offset_frames == 3 and r.offset_ms == 120.0
    assert r.prob_at_offset == pytest.approx(0.95) and r.offscreen_ratio == 0.0
    assert r.in_sync is False
    assert analyze_track(p, fps=30).offset_ms == pytest.approx(100.0)


# --- offsets over time, drift ------------------------------------------------------------------


def test_refined_offset_is_the_vertex_of_the_parabola_through_the_peak():
    k = np.arange(-3, 4)
    assert refined_offset(0.9 - 0.1 * (k - 0.3) ** 2) == pytest.approx(0.3)
    assert refined_offset(0.9 - 0.1 * (k + 1.45) ** 2) == pytest.approx(-1.45)
    assert refined_offset([0.1, 0.2, 0.3, 0.4, 0.5]) == 2.0  # peak at the end of the range
    # A flat top: the first of the equal values and its neighbours, 0.1 and 0.5, put the
    # vertex half a frame to the right: -1 + 0.5 · (0.1 - 0.5) / (0.1 - 1.0 + 0.5) = -0.5.
    assert refined_offset([0.1, 0.5, 0.5, 0.5, 0.1]) == pytest.approx(-0.5)


def test_segment_offsets_cut_the_track_and_read_speech_only():
    # 750 frames, offsets -2..2; the peak at offset 1 in the first 250 frames, then 0, then -1,
    # except that the middle stretch peaks at +2 on the frames that are not speech.
    k = np.arange(-2, 3)[:, None]
    peak = np.repeat([1, 0, -1], 250)
    speech = np.ones(750, bool)
    speech[250:300] = False
    peak[250:300] = 2
    probs = 0.8 - 0.05 * (k - peak[None, :]) ** 2
    segments = segment_offsets(probs, speech)
    assert [(s.first, s.last) for s in segments] == [(0, 249), (250, 499), (500, 749)]
    assert [s.offset for s in segments] == pytest.approx([1.0, 0.0, -1.0])
    # Without the speech mask the middle stretch's mean curve leans towards +2.
    assert segment_offsets(probs)[1].offset > 0.1
    # A stretch with less than `min_speech` frames of speech is left out.
    speech[500:] = False
    speech[500:540] = True
    assert [s.first for s in segment_offsets(probs, speech)] == [0, 250]
    # 400 frames make two stretches (about 250 each), 100 frames one.
    assert [(s.first, s.last) for s in segment_offsets(probs[:, :400])] == [(0, 199), (200, 399)]
    assert len(segment_offsets(probs[:, :100])) == 1


def test_drift_is_the_median_pairwise_slope():
    # Offsets 0, 1, 2 frames (0, 40, 80 ms) at 5, 15, 25 s: 40 ms per 10 s = 240 ms per minute.
    even = [SegmentOffset(250 * i, 250 * i + 249, float(i)) for i in range(3)]
    assert drift_ms_per_min(even) == pytest.approx(240.0)
    # With three stretches one wrong peak (+9 frames) does move the median of the slopes:
    # 240 (0-1), (9·40 ms)/(20 s) = 1080 (0-2), (8·40)/(10 s) = 1920 (1-2) -> 1080 ...
    wrong = [*even[:2], SegmentOffset(500, 749, 9.0)]
    assert drift_ms_per_min(wrong) == pytest.approx(1080.0)
    # ... and with four stretches one wrong peak leaves the median at the true slope.
    four = [*even, SegmentOffset(750, 999, 3.0)]
    assert drift_ms_per_min(four) == pytest.approx(240.0)
    four[1] = SegmentOffset(250, 499, 6.0)
    assert drift_ms_per_min(four) == pytest.approx(240.0)
    assert drift_ms_per_min(even[:2]) is None
    # At 50 fps a frame is 20 ms and a stretch 5 s: the same 4 ms per second.
    assert drift_ms_per_min(even, fps=50) == pytest.approx(240.0)


def test_offset_at_start_is_the_line_through_the_stretches_at_frame_0():
    # 240 ms per minute = 0.004 frames of offset per frame; centres 124.5, 374.5, 624.5.
    even = [
        SegmentOffset(250 * i, 250 * i + 249, 0.5 + 0.004 * (250 * i + 124.5)) for i in range(3)
    ]
    assert offset_at_start(even, 240.0) == pytest.approx(0.5)
    # The median of the three intercepts: one stretch's wrong peak does not move it.
    wrong = [even[0], SegmentOffset(250, 499, 9.0), even[2]]
    assert offset_at_start(wrong, 240.0) == pytest.approx(0.5)


def voter(offset: int, prob: float, offscreen: float) -> TrackSync:
    return TrackSync(0, offset, offset * 40.0, 0.5, prob, offscreen, False)


def test_video_offset_is_the_median_of_the_speech_each_track_explains():
    # Votes: +3 with 100 × 0.9 = 90 frames, −2 with 50 × 0.6 = 30, +5 with 80 × 0.5 = 40;
    # the listener (probability 0.2) does not vote. Sorted: −2 (30), +3 (120), +5 (160):
    # half of 160 is first reached at +3.
    tracks = [voter(3, 0.9, 0.1), voter(-2, 0.7, 0.4), voter(5, 0.6, 0.5), voter(-9, 0.2, 0.0)]
    assert video_offset(tracks, [100, 50, 80, 400]) == (3, 160)
    # A tie (40 and 40 frames) goes to the lower offset.
    assert video_offset([voter(4, 0.8, 0.0), voter(-1, 0.8, 0.0)], [40, 40]) == (-1, 80)


def test_video_offset_needs_a_second_of_explained_speech():
    assert video_offset([voter(6, 0.9, 0.5)], [48]) == (0, 0)  # 24 frames explained
    assert video_offset([voter(6, 0.9, 0.5)], [50]) == (6, 25)
    assert video_offset([voter(6, VOTE_MIN_PROB - 0.01, 0.0)], [500]) == (0, 0)  # not confident
    assert video_offset([voter(6, VOTE_MIN_PROB, 0.0)], [500]) == (6, 500)
    assert video_offset([voter(6, 0.4, 0.0)], [500], min_prob=0.5) == (0, 0)
    assert video_offset([], []) == (0, 0)


def test_bad_inputs_raise():
    with pytest.raises(InputError):
        estimate_offset(np.full((4, 3), 0.5))  # even number of offsets
    with pytest.raises(InputError):
        estimate_offset(np.full((3, 0), 0.5))  # no frames
    with pytest.raises(InputError):
        estimate_offset(np.array([[0.5, np.nan, 0.5]]))
    with pytest.raises(InputError):
        estimate_offset(np.array([[0.5, 1.5, 0.5]]))


# --- typed results, JSON, plot ---------------------------------------------------------------


def test_json_keys_and_values():
    t = TrackSync(
        track_id=np.int64(4),
        offset_frames=np.int64(-2),
        offset_ms=-80.0,
        confidence=np.float32(0.123456),
        prob_at_offset=0.876543,
        offscreen_ratio=1 / 3,
        in_sync=np.bool_(False),
    )
    d = t.to_dict()
    assert set(d) == SYNC_TRACK_KEYS
    assert d == {
        "track_id": 4,
        "offset_frames": -2,
        "offset_ms": -80.0,
        "confidence": 0.1235,
        "prob_at_offset": 0.8765,
        "offscreen_ratio": 0.3333,
        "in_sync": False,
    }
    line = VideoSync("clips/a.mp4", [t, analyze_track(const_probs([0.1, 0.9, 0.1], 5), 5)])
    text = line.to_json_line()
    assert "\n" not in text
    back = json.loads(text)
    assert list(back) == ["video", "tracks"]
    assert back["video"] == "clips/a.mp4"
    assert back["tracks"][0] == d
    assert back["tracks"][1] == {
        "track_id": 5,
        "offset_frames": 0,
        "offset_ms": 0.0,
        "confidence": 0.8,
        "prob_at_offset": 0.9,
        "offscreen_ratio": 0.0,
        "in_sync": True,
    }


def test_plot_offset_map_writes_a_png(tmp_path):
    from matplotlib.image import imread

    p = _synthetic(3, k=4, t=50)
    r = analyze_track(p)
    out = plot_offset_map(p, tmp_path / "map.png", title="clip 7", speaking=r.speaking)
    assert out == tmp_path / "map.png"
    img = imread(out)
    assert img.shape[:2] == (400, 1000)
    assert img[..., :3].std() > 0.05  # something was drawn
    assert [f.name for f in tmp_path.iterdir()] == ["map.png"]  # no temp file left behind
    img = imread(plot_offset_map(p, tmp_path / "small.png", figsize=(4, 3), dpi=50))
    assert img.shape[:2] == (150, 200)
