"""syncasd.audio against python_speech_features output stored by the original pipeline."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DATA, FIXTURES, needs_shared

from syncasd.audio import is_silent, mfcc, speech_frames, speech_probability

INPUTS = FIXTURES / "inputs"


@pytest.fixture(scope="module")
def audio014() -> np.ndarray:
    return np.load(INPUTS / "clip014_audio16k_int16.npy")


def _assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


@needs_shared
def test_mfcc_whole_clip(audio014):
    _assert_close(mfcc(audio014), np.load(INPUTS / "clip014_mfcc_full.npy"))
    assert mfcc(audio014).shape == (1004, 13)


@needs_shared
def test_mfcc_track_cut(audio014):
    # 100 frames × 640 samples give 399 rows: the last 400-sample window is zero-padded.
    _assert_close(mfcc(audio014[:64000]), np.load(INPUTS / "clip014_mfcc_trackcut64000.npy"))


def test_mfcc_row_count():
    # 1 + ceil((N − 400) / 160) rows; shorter than one 25 ms window gives none.
    assert mfcc(np.ones(16000, np.int16)).shape == (99, 13)
    assert mfcc(np.ones(400, np.int16)).shape == (1, 13)
    assert mfcc(np.ones(399, np.int16)).shape == (0, 13)


def test_is_silent_hand_cases():
    assert is_silent(np.zeros(16000, np.int16))
    assert is_silent(np.zeros(0, np.int16))
    assert is_silent(np.array([15, -15, 3], np.int16))
    assert not is_silent(np.array([0, -16, 0], np.int16))
    assert not is_silent(np.array([-32768], np.int16))  # no int16 overflow in abs()


@needs_shared
def test_is_silent_real_speech(audio014):
    assert not is_silent(audio014)


@needs_shared
def test_vad_finds_the_words_of_a_grid_sentence():
    from syncasd.data.labelled import frames_from_intervals, word_intervals
    from syncasd.media import model_frame_count, read_audio

    path = DATA / "clips" / "grid" / "bbaf2n.mpg"
    audio = read_audio(path)
    n = model_frame_count(len(audio))
    words = frames_from_intervals(word_intervals(path), n)  # "bin blue at f two now", 0.95-2.12 s
    speech = speech_frames(audio)
    assert len(speech) == 75 and n == 74  # 2.978 s: the last frame is partial
    assert np.flatnonzero(words)[[0, -1]].tolist() == [24, 52]
    assert np.flatnonzero(speech)[[0, -1]].tolist() == [24, 53]  # 30 ms padding: one frame more
    assert (speech[:n] == words).mean() > 0.98  # measured 73 of 74 frames


def test_vad_on_digital_silence_and_short_input():
    assert not speech_frames(np.zeros(16000, np.int16)).any()
    assert speech_probability(np.zeros(16000, np.int16)).max() < 0.05
    assert speech_probability(np.zeros(1000, np.int16)).shape == (2,)  # ceil(1000 / 640)
    assert speech_probability(np.zeros(300, np.int16)).tolist() == [0.0]  # under one window
    assert speech_probability(np.zeros(0, np.int16)).shape == (0,)


def test_vad_leaves_torch_threads_alone():
    import torch

    before = torch.get_num_threads()
    speech_probability(np.zeros(16000, np.int16))
    assert torch.get_num_threads() == before
