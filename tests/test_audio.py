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


@needs_shared
@pytest.mark.parametrize("cut", [1004 * 160 + 240, 97 * 160 * 3 + 240, 97 * 160 * 3 + 241])
def test_mfcc_in_blocks_equals_one_call_on_the_whole_signal(audio014, monkeypatch, cut):
    # Blocks of 97 rows, each pre-emphasised from the sample before it; cuts that end a block
    # exactly on the last row, and one sample past it (a zero-padded last window).
    import python_speech_features

    import syncasd.audio

    audio = audio014[:cut]
    whole = python_speech_features.mfcc(audio, 16000, numcep=13, winlen=0.025, winstep=0.010)
    monkeypatch.setattr(syncasd.audio, "BLOCK_ROWS", 97)
    blocks = mfcc(audio)
    assert blocks.shape == whole.shape
    # Equal to rounding: BLAS sums the filterbank products in an order that depends on shape.
    np.testing.assert_allclose(blocks, whole, rtol=1e-12, atol=1e-12)


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


@needs_shared
@pytest.mark.parametrize("cut", [30 * 512 * 10, 30 * 512 * 10 + 1])
def test_vad_in_blocks_equals_silero_on_the_whole_signal(audio014, monkeypatch, cut):
    # Blocks of 97 MFCC rows' audio, 30 windows, the state carried across; one cut ends a block
    # on a window, the other adds one sample (a zero-padded last window, as Silero pads).
    import torch

    import syncasd.audio

    audio = audio014[:cut]
    silero = syncasd.audio._silero()
    whole = silero.audio_forward(torch.from_numpy(audio / 32768.0).float(), 16000)[0].numpy()
    monkeypatch.setattr(syncasd.audio, "BLOCK_ROWS", 97)
    blocks = syncasd.audio._vad_window_probs(audio)
    assert blocks.shape == whole.shape == (-(-cut // 512),)
    assert whole.max() > 0.9 and whole.min() < 0.1  # speech and pauses both in the cut
    np.testing.assert_array_equal(blocks, whole)


@pytest.mark.parametrize("entry", ["speech_frames", "speech_probability"])
def test_vad_leaves_torch_threads_alone(entry):
    """silero_vad sets torch's threads to 1 when first imported: in a fresh process, whichever
    VAD function runs first must leave the count as it was (`speech_frames` once did not, and
    a training run went on with one core of two)."""
    import subprocess
    import sys

    code = (
        "import numpy as np, torch; torch.set_num_threads(3); "
        f"from syncasd.audio import {entry}; {entry}(np.zeros(16000, np.int16)); "
        "print(torch.get_num_threads())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["3"]


# --- IC-SyncNet log-mel -------------------------------------------------------------------------


def test_log_mel_shape_and_range():
    from syncasd.audio import log_mel

    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(16000) * 3000).astype(np.int16)
    mel = log_mel(audio)
    # Centred STFT, hop 200: 1 + N // 200 columns; one second → 81 (80 per second + 1).
    assert mel.shape == (80, 81) and mel.dtype == np.float32
    assert mel.min() >= -4.0 and mel.max() <= 4.0
    # 25 frames × 640 samples: 1 + 16000 // 200 = 81 as well; 3 frames → 1 + 1920 // 200 = 10.
    assert log_mel(audio[:1920]).shape == (80, 10)
    assert log_mel(audio[:199]).shape == (80, 1)
    assert log_mel(np.zeros(0, np.int16)).shape == (80, 1)
    with pytest.raises(ValueError):
        log_mel(audio, sample_rate=8000)


def test_log_mel_of_silence_is_the_floor():
    from syncasd.audio import MEL_SILENCE, log_mel

    assert MEL_SILENCE == -4.0
    assert (log_mel(np.zeros(3200, np.int16)) == MEL_SILENCE).all()


def test_log_mel_pure_tone_lands_in_its_mel_bin():
    from syncasd.audio import log_mel

    # Slaney mel scale: m = 3f/200 below 1 kHz. The 82 filter edges are evenly spaced from
    # mel(55 Hz) = 55·3/200 = 0.825 to mel(7600 Hz) = 15 + 27·ln(7.6)/ln(6.4) = 44.4988, a step
    # of (44.4988 − 0.825)/81 = 0.53918. Filter 20 peaks at edge 21: 0.825 + 21·0.53918
    # = 12.148 mel = 12.148·200/3 = 809.9 Hz.
    t = np.arange(16000) / 16000
    tone = (np.sin(2 * np.pi * 809.9 * t) * 8000).astype(np.int16)
    mel = log_mel(tone)
    inner = mel[:, 4:-4]  # away from the reflect-padded ends
    assert (inner.argmax(axis=0) == 20).all()
    # Louder in its own bin than anywhere ≥ 3 bins away.
    assert inner[20].mean() > inner[np.r_[:17, 24:80]].max(axis=0).mean() + 1.0


def test_mel_window_start_by_hand():
    from syncasd.audio import mel_window_start

    # floor(3.2·t) − 8: t = 0 → −8; 1 → 3 − 8 = −5; 2 → 6 − 8 = −2; 5 → 16 − 8 = 8;
    # −1 → floor(−3.2) − 8 = −12.
    assert [mel_window_start(t) for t in (0, 1, 2, 5, -1)] == [-8, -5, -2, 8, -12]
    np.testing.assert_array_equal(
        mel_window_start(np.array([0, 1, 2, 5, -1])), [-8, -5, -2, 8, -12]
    )


@pytest.mark.parametrize("t", [5, 6, 10])
def test_mel_window_is_centred_on_the_five_images(t):
    from syncasd.audio import MEL_SILENCE, log_mel, mel_window

    # A click at the centre of images t … t + 4: sample 640·t + 2.5·640 = 640·t + 1600, which is
    # column (640·t + 1600)/200 = 3.2·t + 8. The window starts at floor(3.2·t) − 8, so the click
    # sits at 16 + frac(3.2·t) in it: 16 (t = 5, 10) and 16.2 → 16 (t = 6).
    audio = np.zeros(640 * 20, np.int16)
    audio[640 * t + 1600] = 20000
    mel = log_mel(audio)
    window = mel_window(mel, t)
    assert window.shape == (80, 32)
    assert window.sum(axis=0).argmax() == 16
    # The window's first column is the mel's column floor(3.2·t) − 8.
    np.testing.assert_array_equal(window, mel[:, (16 * t) // 5 - 8 :][:, :32])
    # At the clip's start the columns before the audio read as silence.
    first = mel_window(mel, 0)
    assert (first[:, :8] == MEL_SILENCE).all()
    np.testing.assert_array_equal(first[:, 8:], mel[:, :24])
    assert (mel_window(mel, 100) == MEL_SILENCE).all()


def test_log_mel_at_100_hz_shares_every_fifth_column_with_80_hz(audio014):
    from syncasd.audio import MEL_HOP_100HZ, log_mel

    audio = audio014[: 25 * 640]
    at_100 = log_mel(audio, hop=MEL_HOP_100HZ)
    assert at_100.shape == (80, 1 + len(audio) // 160)
    # Column 5j at hop 160 and column 4j at hop 200 are both centred on sample 800·j.
    np.testing.assert_array_equal(
        at_100[:, ::5], log_mel(audio)[:, ::4][:, : at_100[:, ::5].shape[1]]
    )


@needs_shared
@pytest.mark.parametrize("hop", [200, 160])
def test_log_mel_in_blocks_equals_the_recipe_on_the_whole_signal(audio014, monkeypatch, hop):
    # The whole clip (1,004 rows) is one block by default; blocks of 97 rows' worth of audio
    # cross it 11 times, the reflected ends included.
    import syncasd.audio
    from syncasd.audio import log_mel

    audio = audio014[: 1004 * 160 + 333]
    whole = log_mel(audio, hop=hop)
    np.testing.assert_allclose(whole, log_mel_by_hand(audio, hop), atol=1e-5)
    monkeypatch.setattr(syncasd.audio, "BLOCK_ROWS", 97)
    np.testing.assert_array_equal(log_mel(audio, hop=hop), whole)
    # A clip no longer than half a window is zero-padded, not reflected, either way.
    np.testing.assert_allclose(
        log_mel(audio[:300], hop=hop), log_mel_by_hand(audio[:300], hop), atol=1e-5
    )


def log_mel_by_hand(audio: np.ndarray, hop: int) -> np.ndarray:
    """`log_mel`'s recipe on the whole signal at once: pre-emphasis, padded by 400 samples
    (reflected, or zeros for a clip of at most 400), periodic Hann, 80 mel bins, dB, [-4, 4]."""
    from syncasd.audio import _mel_filterbank

    x = audio.astype(np.float64) / 32768.0
    x = np.concatenate([x[:1], x[1:] - 0.97 * x[:-1]])
    x = np.pad(x, 400, mode="reflect" if x.size > 400 else "constant")
    n_cols = 1 + audio.size // hop
    frames = np.stack([x[j * hop : j * hop + 800] for j in range(n_cols)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(800) / 800)
    mel = _mel_filterbank(16000) @ np.abs(np.fft.rfft(frames * window, axis=1)).T
    db = 20.0 * np.log10(np.maximum(mel, 1e-5)) - 20.0
    return np.clip(8 * (db + 100) / 100 - 4, -4, 4).astype(np.float32)


def test_asd_features_are_the_mfccs_with_the_100_hz_log_mel_beside(audio014):
    from syncasd.audio import MFCC_WIDTH, asd_features, log_mel, reads_mel
    from syncasd.models.ensemble import MelGatedLightASD, TripleGatedLightASD

    audio = audio014[: 50 * 640]
    plain, both = asd_features(audio), asd_features(audio, with_mel=True)
    assert plain.shape == (199, 13) and both.shape == (199, MFCC_WIDTH + 80)
    np.testing.assert_array_equal(plain, mfcc(audio))
    np.testing.assert_array_equal(both[:, :MFCC_WIDTH], plain)
    np.testing.assert_array_equal(both[:, MFCC_WIDTH:], log_mel(audio, hop=160)[:, :199].T)
    # Which a model reads it says itself.
    assert reads_mel(MelGatedLightASD) and not reads_mel(TripleGatedLightASD)
    assert not reads_mel(object())
