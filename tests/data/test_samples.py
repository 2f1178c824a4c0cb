"""Training batches from a real corpus of a few clips (built once per session)."""

import json

import numpy as np
import pytest
from conftest import needs_shared

from syncasd.audio import mfcc
from syncasd.data.labelled import speech_segments
from syncasd.data.samples import (
    FADE,
    AudioAugment,
    BatchMaker,
    SampleConfig,
    augment_crops,
    degrade_photometric,
    gain_and_noise,
    pink_noise,
    track_audio,
)
from syncasd.timebase import SAMPLES_PER_FRAME

pytestmark = needs_shared

QUIET = dict(
    noise_prob=0.0,
    silence_prob=0.0,
    white_noise_prob=0.0,
    gain_db=(0.0, 0.0),
    small_shift=0.0,
    flip_prob=0.0,
)


def test_batches_are_a_function_of_epoch_and_index(small_corpus):
    maker = BatchMaker(small_corpus, small_corpus.split("train"), SampleConfig(batch_frames=300))
    a, b, c = maker(0, 3), maker(0, 3), maker(1, 3)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["mfcc"], c["mfcc"])  # another epoch, another batch
    n, length = a["labels"].shape
    assert a["visual"].shape == (n, length, 112, 112) and a["visual"].dtype == np.uint8
    assert a["mfcc"].shape == (n, 4 * length, 13)
    assert n == max(2, 300 // length) and length <= 100


def test_in_sync_audio_is_the_tracks_own_mfcc(small_corpus):
    maker = BatchMaker(small_corpus, small_corpus.split("train"), SampleConfig(**QUIET))
    rng = np.random.default_rng(0)
    i = small_corpus.split("train")[0]
    t = small_corpus.tracks[i]
    y = np.asarray(small_corpus.labels[t.offset : t.offset + 20])
    audio, labels = maker._audio(rng, i, 5, 20, y)
    own = small_corpus.audio[(t.offset + 5) * SAMPLES_PER_FRAME :][: 20 * SAMPLES_PER_FRAME + 240]
    np.testing.assert_array_equal(audio, own.astype(np.float32))
    np.testing.assert_array_equal(labels, y)
    assert mfcc(audio.astype(np.int16)).shape == (80, 13)  # exactly 4 rows per frame


def test_silence_makes_every_frame_negative(small_corpus):
    config = SampleConfig(**{**QUIET, "silence_prob": 1.0})
    batch = BatchMaker(small_corpus, small_corpus.split("train"), config)(0, 0)
    assert not batch["labels"].any()


def test_frozen_embeddings_replace_crops(small_corpus):
    ids = small_corpus.split("train")
    n = small_corpus.labels.shape[0]
    variants = [np.zeros((n, 4), np.float16), np.ones((n, 4), np.float16)]
    config = SampleConfig(batch_frames=400, flip_prob=1.0)
    batch = BatchMaker(small_corpus, ids, config, visual_variants=variants)(0, 1)
    assert batch["visual"].dtype == np.float32 and (batch["visual"] == 1).all()


def test_pink_noise_has_unit_rms_and_power_falling_as_one_over_f():
    noise = pink_noise(160_000, np.random.default_rng(1))
    assert abs(np.sqrt(np.mean(noise**2)) - 1.0) < 1e-9
    power = np.abs(np.fft.rfft(noise)) ** 2  # bin k is k / 10 Hz at 16 kHz
    # Ten times the power density at 100 Hz as at 1 kHz, and as much power per octave.
    assert 8 < power[900:1100].mean() / power[9900:10100].mean() < 12.5
    assert 0.8 < power[1000:2000].sum() / power[10000:20000].sum() < 1.25


def test_gain_and_noise_draws_pink_noise_only_when_asked():
    audio = 1000 * np.sin(2 * np.pi * 220 * np.arange(32_000) / 16_000)
    plain = AudioAugment(gain_db=(-6.0, 6.0), white_noise_prob=1.0, white_snr_db=(20.0, 20.0))
    # Without pink noise, the draws of the recipes before it: a gain, then white noise.
    rng = np.random.default_rng(4)
    gained = audio * 10 ** (rng.uniform(-6.0, 6.0) / 20)
    rng.random()  # whether to add white noise: always, at probability 1
    snr = rng.uniform(20.0, 20.0)
    expected = gained + rng.normal(0, np.sqrt(np.mean(gained**2)) * 10 ** (-snr / 20), 32_000)
    np.testing.assert_allclose(gain_and_noise(audio, np.random.default_rng(4), plain), expected)
    # Pink noise alone at 0 dB: as loud as the sine (RMS 707), falling as 1/f.
    pink = AudioAugment(
        gain_db=(0.0, 0.0), white_noise_prob=0.0, pink_noise_prob=1.0, pink_snr_db=(0.0, 0.0)
    )
    added = gain_and_noise(audio, np.random.default_rng(4), pink) - audio
    assert abs(np.sqrt(np.mean(added**2)) - 1000 / np.sqrt(2)) < 1e-6
    power = np.abs(np.fft.rfft(added)) ** 2  # bin k is k / 2 Hz
    assert 6 < power[180:220].mean() / power[1980:2020].mean() < 16


def test_augment_crops_keeps_shape_and_differs():
    crops = np.tile(np.arange(112, dtype=np.uint8)[None, None], (3, 112, 1))
    out = augment_crops(crops, np.random.default_rng(1))
    assert out.shape == crops.shape and out.dtype == np.uint8
    assert not np.array_equal(out, crops)
    np.testing.assert_array_equal(out[0], out[1])  # one transform for the whole window


def test_photometric_degradation_dims_and_blurs_a_window():
    rng = np.random.default_rng(0)
    # A face-like texture: a gradient plus 1-pixel stripes (what a low resolution erases).
    crops = np.tile((np.arange(112) + 60 * (np.arange(112) % 2)).astype(np.uint8), (4, 112, 1))
    out = degrade_photometric(crops, np.random.default_rng(3))
    assert out.shape == crops.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, degrade_photometric(crops, np.random.default_rng(3)))
    ratios, stripes = [], []
    for _ in range(40):
        x = degrade_photometric(crops, rng).astype(float)
        ratios.append(x.std() / crops.std())
        stripes.append(np.abs(np.diff(x[0].mean(axis=0))).mean())
    # Contrast × 0.3–1 (gamma can stretch some of it back): flatter as a rule, never blank.
    assert 0.1 < min(ratios) and np.median(ratios) < 0.8 and max(ratios) < 1.3
    # The stripes step by about 59 grey levels; at 16–64 px they blur to a few levels, on
    # about half the draws (noise averaged over 112 rows stays below 1).
    blurred = np.mean(np.array(stripes) < 15)
    assert 0.25 < blurred < 0.75 and max(stripes) > 15


def test_augment_crops_is_photometric_only_when_asked():
    crops = np.tile(np.arange(112, dtype=np.uint8)[None, None], (3, 112, 1))
    plain = augment_crops(crops, np.random.default_rng(5))
    # Without the flag, the same draws as before it existed (cached variants stay valid).
    np.testing.assert_array_equal(plain, augment_crops(crops, np.random.default_rng(5), False))
    dimmed = augment_crops(crops, np.random.default_rng(5), photometric=True)
    rng = np.random.default_rng(5)
    expected = degrade_photometric(augment_crops(crops, rng), rng)
    np.testing.assert_array_equal(dimmed, expected)
    assert not np.array_equal(dimmed, plain)


def test_the_small_corpus_is_laid_out_as_indexed(small_corpus):
    pos = 0
    for t in small_corpus.tracks:
        assert t.offset == pos
        pos += t.length
    assert small_corpus.crops.shape == (pos, 112, 112)
    assert small_corpus.audio.shape == (pos * SAMPLES_PER_FRAME,)
    assert {t.split for t in small_corpus.tracks} == {"train", "val"}
    # The truncated copy is skipped with its reason, and counted in the index.
    assert len(small_corpus.skipped) == 1 and "999.mp4" in small_corpus.skipped[0]["source"]
    track = small_corpus.track(0)
    assert track.crops.shape == (small_corpus.tracks[0].length, 112, 112)


def test_misaligned_audio_is_the_own_voice_shifted_in_the_waveform(small_corpus):
    """misaligned_shift (4, 4): each window's second audio is its own, 4 frames (16 MFCC rows)
    later or earlier, read past the window rather than rolled round inside it."""
    config = SampleConfig(**QUIET, batch_frames=300, misaligned_shift=(4, 4))
    batch = BatchMaker(small_corpus, small_corpus.split("train"), config)(0, 1)
    moved, own = batch["mfcc_misaligned"], batch["mfcc"]
    assert moved.shape == own.shape
    r = 16
    for m, o in zip(moved, own, strict=True):
        later = np.allclose(m[1:-r], o[1 + r :], atol=1e-4)  # audio of frames t + 4
        earlier = np.allclose(m[1 + r : -r], o[1 : -2 * r], atol=1e-4)  # audio of frames t − 4
        assert later != earlier  # exactly one of the two shifts
    assert "mfcc_misaligned" not in BatchMaker(
        small_corpus, small_corpus.split("train"), SampleConfig(**QUIET, batch_frames=300)
    )(0, 1)


def test_a_realigned_track_hears_and_is_labelled_from_its_audio_lag_frames_later(
    small_corpus, tmp_path
):
    """samples.track_offsets: a listed track's lips stay where they are, its audio and labels
    (which come from the audio) are read `lag` frames later, inside the track; a null drops a
    track; unlisted tracks are drawn exactly as without the file."""
    train = small_corpus.split("train")
    lagged, dropped, plain = train[0], train[1], train[2:]
    video = small_corpus.tracks[lagged].video_id
    table = tmp_path / "offsets.json"
    table.write_text(json.dumps({video: 3, small_corpus.tracks[dropped].video_id: None}))
    config = SampleConfig(**QUIET, batch_frames=400, max_frames=50, track_offsets=str(table))
    maker = BatchMaker(small_corpus, train, config)
    assert lagged in maker.tracks and dropped not in maker.tracks
    t = small_corpus.tracks[lagged]
    crops = np.asarray(small_corpus.crops[t.offset : t.offset + t.length])
    checked = 0
    for index in range(6):
        batch = maker(0, index)
        length = batch["labels"].shape[1]
        windows = zip(batch["visual"], batch["mfcc"], batch["labels"], strict=True)
        for visual, rows, labels in windows:
            starts = range(t.length - length + 1)
            found = [s for s in starts if np.array_equal(crops[s], visual[0])]
            if not found or not np.array_equal(crops[found[0] : found[0] + length], visual):
                continue  # another track's window
            s = found[0]
            a = s + 3
            assert a + length <= t.length  # the audio of the last lip frame lies in the track
            np.testing.assert_array_equal(
                labels, small_corpus.labels[t.offset + a : t.offset + a + length]
            )
            audio = track_audio(small_corpus, lagged, a * SAMPLES_PER_FRAME, length * 640 + 240)
            np.testing.assert_allclose(rows, mfcc(audio.astype(np.int16))[: 4 * length], atol=1e-4)
            checked += 1
    assert checked > 0
    unlisted = BatchMaker(small_corpus, plain, SampleConfig(**QUIET, batch_frames=400))
    listed = BatchMaker(
        small_corpus, plain, SampleConfig(**QUIET, batch_frames=400, track_offsets=str(table))
    )
    for key, value in unlisted(0, 2).items():
        np.testing.assert_array_equal(value, listed(0, 2)[key])


def test_speech_segments_are_the_runs_of_speaking_frames():
    assert speech_segments(np.array([0, 1, 1, 0, 0, 1, 0, 1, 1])) == [(1, 3), (5, 6), (7, 9)]
    assert speech_segments(np.zeros(4, bool)) == []


def test_dubbed_audio_replaces_each_run_of_speech_with_another_identitys_voice(small_corpus):
    """Outside the speech the window keeps its own audio; inside each run, past the 10 ms
    fades, it is another identity's voice read from one of its speech onsets, at the loudness
    of the voice it replaces."""
    config = SampleConfig(**QUIET, batch_frames=300, dubbed=True)
    maker = BatchMaker(small_corpus, small_corpus.split("train"), config)
    i = next(k for k in maker.tracks if speech_segments(_labels(small_corpus, k)) != [])
    t = small_corpus.tracks[i]
    y = _labels(small_corpus, i)
    n = min(t.length, 80)
    own = track_audio(small_corpus, i, 0, n * SAMPLES_PER_FRAME + 240)
    dubbed = maker.donors.dub(np.random.default_rng(3), own, y[:n], t.identity)
    speech = np.zeros(len(dubbed), bool)
    runs = speech_segments(y[:n])
    for a, b in runs:
        speech[a * SAMPLES_PER_FRAME : b * SAMPLES_PER_FRAME] = True
    np.testing.assert_array_equal(dubbed[~speech], own[~speech])
    p = SAMPLES_PER_FRAME
    checked = 0
    for a, b in runs:
        need = (b - a) * p
        if b - a < 5:  # the fades would weigh on the loudness
            continue
        checked += 1
        inner = slice(a * p + FADE, b * p - FADE)
        piece = dubbed[inner]
        assert np.sqrt(np.mean(dubbed[a * p : b * p] ** 2)) == pytest.approx(
            np.sqrt(np.mean(own[a * p : b * p] ** 2)), rel=0.05
        )
        matches = [
            d
            for d, onsets in maker.donors.onsets.items()
            for o in onsets
            if _scaled_copy(piece, track_audio(small_corpus, d, int(o) * p, need)[FADE:-FADE])
        ]
        assert matches and all(small_corpus.tracks[d].identity != t.identity for d in matches)
    assert checked
    batch = maker(0, 1)
    assert batch["mfcc_dubbed"].shape == batch["mfcc"].shape


def test_a_turn_hands_a_stretch_of_the_window_to_another_identitys_voice(small_corpus):
    """Conversations: inside the turn (past its fades) only another identity's voice, read
    from one of its onsets, at the loudness of the window's own speech, labelled not
    speaking; outside it the own audio and labels, untouched."""
    config = SampleConfig(**QUIET, batch_frames=300, turn_prob=1.0, turn_frames=(20, 30))
    maker = BatchMaker(small_corpus, small_corpus.split("train"), config)
    i = next(k for k in maker.tracks if _labels(small_corpus, k)[:80].mean() > 0.5)
    t = small_corpus.tracks[i]
    n = min(t.length, 80)
    y = _labels(small_corpus, i)[:n]
    own = track_audio(small_corpus, i, 0, n * SAMPLES_PER_FRAME + 240)
    audio, labels = maker.donors.turn(np.random.default_rng(4), own, y, t.identity, (20, 30))
    changed = np.flatnonzero(labels != y)
    p = SAMPLES_PER_FRAME
    span = np.flatnonzero(np.any(audio[: n * p].reshape(n, p) != own[: n * p].reshape(n, p), 1))
    a, b = span[0], span[-1] + 1
    assert 20 <= b - a <= 30 and np.all(labels[a:b] == 0)
    assert set(changed) <= set(range(a, b)) and np.array_equal(labels[:a], y[:a])
    np.testing.assert_array_equal(audio[: a * p], own[: a * p])
    np.testing.assert_array_equal(audio[b * p :], own[b * p :])
    speech = np.repeat(y.astype(bool), p)
    reference = np.sqrt(np.mean(own[: n * p][speech] ** 2))
    piece = audio[a * p + FADE : b * p - FADE]
    assert np.sqrt(np.mean(audio[a * p : b * p] ** 2)) == pytest.approx(reference, rel=0.05)
    need = (b - a) * p
    matches = [
        d
        for d, onsets in maker.donors.onsets.items()
        for o in onsets
        if _scaled_copy(piece, track_audio(small_corpus, d, int(o) * p, need)[FADE:-FADE])
    ]
    assert matches and all(small_corpus.tracks[d].identity != t.identity for d in matches)
    batch = maker(0, 1)  # every window takes a turn: each has a run of ≥ 20 negative frames
    for row in batch["labels"]:
        assert max((b - a for a, b in speech_segments(row == 0)), default=0) >= 20
    # The visual-only head keeps what the lips do: the corpus labels of each window.
    assert batch["visual_labels"].shape == batch["labels"].shape
    assert np.all(batch["visual_labels"] >= batch["labels"])
    assert np.any(batch["visual_labels"] > batch["labels"])


def _scaled_copy(piece: np.ndarray, voice: np.ndarray) -> bool:
    if np.dot(voice, voice) == 0:
        return False
    scale = np.dot(piece, voice) / np.dot(voice, voice)
    return np.allclose(piece, scale * voice, atol=1e-2 * np.abs(piece).max())


def _labels(corpus, i: int) -> np.ndarray:
    t = corpus.tracks[i]
    return np.asarray(corpus.labels[t.offset : t.offset + t.length])
