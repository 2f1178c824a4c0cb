"""Sync-net training pairs from a corpus written by hand (two tracks of known labels)."""

import json
from dataclasses import asdict

import numpy as np
import pytest

from syncasd.audio import log_mel, mel_window, mfcc
from syncasd.data.corpus import CORPUS_VERSION, Corpus, CorpusTrack
from syncasd.data.samples import mfcc_rows
from syncasd.data.syncpairs import (
    SegmentBatchMaker,
    SegmentSampleConfig,
    SyncBatchMaker,
    SyncSampleConfig,
    segment_starts,
    speaking_centres,
)
from syncasd.models.icsyncnet import CONFIGS, mouth_crops

SPF = 640
LENGTHS = (60, 40)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    root = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    n = sum(LENGTHS)
    tracks, offset = [], 0
    for i, length in enumerate(LENGTHS):
        tracks.append(
            CorpusTrack(f"v{i}", f"id{i}", "train", f"v{i}.mp4", "0" * 64, offset, length, False)
        )
        offset += length
    labels = np.zeros(n, bool)
    labels[5:30] = True  # track 0: frames 5..29 speak
    labels[60 + 10 : 60 + 14] = True  # track 1: only 4 frames, no five-frame window
    np.save(root / "crops.npy", rng.integers(0, 256, (n, 112, 112), dtype=np.uint8))
    np.save(root / "audio.npy", rng.integers(-3000, 3000, n * SPF).astype(np.int16))
    np.save(root / "labels.npy", labels)
    index = {"version": CORPUS_VERSION, "tracks": [asdict(t) for t in tracks], "skipped": []}
    (root / "index.json").write_text(json.dumps(index))
    return Corpus(root)


def test_speaking_centres_are_the_centres_of_fully_speaking_windows(corpus):
    centres = speaking_centres(corpus, [0, 1])
    assert centres[:, 0].tolist() == [0] * 21  # track 1 has no five speaking frames in a row
    assert centres[:, 1].tolist() == list(range(7, 28))  # windows 5-9 … 25-29


def plain() -> SyncSampleConfig:
    return SyncSampleConfig(
        batch=4, hard=3, min_shift=2, max_shift=4, flip_prob=0, gain_db=(0, 0), white_noise_prob=0
    )


def test_batch_shapes_and_determinism(corpus):
    maker = SyncBatchMaker(corpus, [0, 1], CONFIGS["cpu"], plain(), seed=3)
    batch = maker(0, 0)
    assert batch["mouths"].shape == (4, 5, 48, 96) and batch["mouths"].dtype == np.uint8
    assert batch["mel"].shape == (4, 4, 80, 32) and batch["mel"].dtype == np.float32
    assert all(np.array_equal(batch[k], maker(0, 0)[k]) for k in batch)
    assert not np.array_equal(batch["mel"], maker(0, 1)["mel"])
    assert maker.steps_per_epoch() == 21 // 4


def test_sample_windows_are_the_track_audio_at_each_offset(corpus):
    maker = SyncBatchMaker(corpus, [0, 1], CONFIGS["cpu"], plain(), seed=0)
    # Centre 14: the spectrogram starts at frame 14 - 2 - (4 + 3) = 5, a multiple of five
    # frames, so its columns are those of the whole track's spectrogram (16 per 5 frames).
    mouths, windows = maker.sample(np.random.default_rng(1), 0, 14)
    assert np.array_equal(
        mouths, mouth_crops(np.asarray(corpus.crops[12:17]), CONFIGS["cpu"])[:, 0]
    )
    whole = log_mel(np.asarray(corpus.audio[: 60 * SPF]))
    assert np.allclose(windows[0], mel_window(whole, 12), atol=1e-4)  # the positive, offset 0
    # Each hard negative is the window of some offset 2 ≤ |k| ≤ 4, all different.
    found = []
    for w in windows[1:]:
        match = [
            k for k in (-4, -3, -2, 2, 3, 4) if np.allclose(w, mel_window(whole, 12 + k), atol=1e-4)
        ]
        assert len(match) == 1
        found += match
    assert len(set(found)) == 3


def test_too_few_windows_or_offsets_are_refused(corpus):
    with pytest.raises(ValueError, match="fewer than one batch"):
        SyncBatchMaker(corpus, [1], CONFIGS["cpu"], plain())
    with pytest.raises(ValueError, match="hard-negative offsets"):
        config = SyncSampleConfig(batch=4, hard=5, min_shift=2, max_shift=3)
        SyncBatchMaker(corpus, [0], CONFIGS["cpu"], config)


def segments(**changes) -> SegmentSampleConfig:
    values = dict(
        batch=3, frames=8, max_shift=4, margin=3, flip_prob=0, gain_db=(0, 0), white_noise_prob=0
    )
    return SegmentSampleConfig(**(values | changes))


def test_segment_starts_keep_the_margin_and_half_speaking(corpus):
    starts = segment_starts(corpus, [0, 1], segments())
    # Track 0 (60 frames, frames 5–29 speak): [s, s + 8) holds ≥ 4 speaking frames for
    # s ≤ 26; s ≥ 3 and s ≤ 60 − 8 − 3 keep the margin. Track 1 (frames 10–13): s in 6…10.
    assert starts.tolist() == [[0, s] for s in range(3, 27)] + [[1, s] for s in range(6, 11)]
    assert len(segment_starts(corpus, [1], segments(min_speaking=0.6))) == 0
    # A track whose audio is read 5 frames earlier (realigned, lag −5) starts 5 frames later,
    # so that the audio too keeps the margin; read 25 frames later, no segment keeps it.
    assert segment_starts(corpus, [1], segments(), {1: -5}).tolist() == [[1, 8], [1, 9], [1, 10]]
    assert len(segment_starts(corpus, [1], segments(), {1: 25})) == 0


def test_segment_sample_is_the_track_and_its_audio_around_it(corpus):
    maker = SegmentBatchMaker(corpus, [0, 1], segments(), seed=0)
    k, m, s = 4, 3, 8
    sample = maker.sample(np.random.default_rng(0), 1, 7)  # track 1 starts at corpus frame 60
    assert np.array_equal(sample["crops"], corpus.crops[67:75])
    assert sample["speaking"].tolist() == [False] * 3 + [True] * 4 + [False]
    # Audio of track frames 7 − 7 = 0 … 7 + 8 + 7 (one frame more for MFCC's last window),
    # all inside the 40-frame track here.
    audio = np.asarray(corpus.audio[60 * SPF : 83 * SPF])
    assert np.allclose(sample["mfcc"], mfcc(audio)[: 4 * (s + 2 * (k + m))], atol=1e-4)
    # Lip frame j at offset i − K hears track frame 7 + j + i − K; valid if 3 ≤ it < 37.
    heard = 7 + np.arange(s)[None, :] + np.arange(-k, k + 1)[:, None]
    assert np.array_equal(sample["valid"], (heard >= 3) & (heard < 37))
    assert sample["valid"].all()  # a segment in the middle of its track


def test_realigned_track_reads_its_audio_later(corpus, tmp_path):
    # Track 1's voice follows its lips by 2 frames: its audio is read 2 frames later, so lip
    # frame j at offset i − K hears track frame 7 + 2 + j + i − K; track 0 is not listed.
    table = tmp_path / "offsets.json"
    table.write_text(json.dumps({"v1": 2, "other": None}))
    maker = SegmentBatchMaker(corpus, [0, 1], segments(track_offsets=str(table)), seed=0)
    k, m, s = 4, 3, 8
    sample = maker.sample(np.random.default_rng(0), 1, 7)
    assert np.array_equal(sample["crops"], corpus.crops[67:75])  # the lips stay where they are
    audio = np.asarray(corpus.audio[62 * SPF : 85 * SPF])
    assert np.allclose(sample["mfcc"], mfcc(audio)[: 4 * (s + 2 * (k + m))], atol=1e-4)
    heard = 9 + np.arange(s)[None, :] + np.arange(-k, k + 1)[:, None]
    assert np.array_equal(sample["valid"], (heard >= 3) & (heard < 37))
    plain_sample = maker.sample(np.random.default_rng(0), 0, 10)
    unlisted = SegmentBatchMaker(corpus, [0, 1], segments(), seed=0)
    assert np.array_equal(
        plain_sample["mfcc"], unlisted.sample(np.random.default_rng(0), 0, 10)["mfcc"]
    )


def test_a_null_track_offset_drops_the_track(corpus, tmp_path):
    table = tmp_path / "offsets.json"
    table.write_text(json.dumps({"v1": None}))
    maker = SegmentBatchMaker(corpus, [0, 1], segments(track_offsets=str(table)), seed=0)
    assert set(maker.starts[:, 0].tolist()) == {0}


def test_a_bad_track_offsets_file_is_one_clear_error(corpus, tmp_path):
    from syncasd.errors import SyncASDError

    table = tmp_path / "offsets.json"
    table.write_text(json.dumps({"v1": 1.5}))
    with pytest.raises(SyncASDError, match="whole frames"):
        SegmentBatchMaker(corpus, [0, 1], segments(track_offsets=str(table)))
    for bad in ({"v1": True}, [["v1", 2]]):  # a JSON bool is no frame count; a list no map
        table.write_text(json.dumps(bad))
        with pytest.raises(SyncASDError, match="whole frames"):
            SegmentBatchMaker(corpus, [0, 1], segments(track_offsets=str(table)))
    with pytest.raises(SyncASDError, match="cannot read"):
        SegmentBatchMaker(corpus, [0, 1], segments(track_offsets=str(tmp_path / "missing")))


def test_segment_audio_outside_the_track_is_silence(corpus):
    maker = SegmentBatchMaker(corpus, [0, 1], segments(), seed=0)
    sample = maker.sample(np.random.default_rng(0), 0, 3)  # audio from track frame −4
    expected = np.concatenate([np.zeros(4 * SPF, np.int16), corpus.audio[: 20 * SPF]])
    assert np.allclose(sample["mfcc"], mfcc(expected)[:88], atol=1e-4)
    # Lip frame j at offset −4 hears track frame j − 1: valid from j = 4 (the margin is 3).
    assert sample["valid"][0].tolist() == [False] * 4 + [True] * 4
    assert sample["valid"][4:].all()


def test_segment_batches_are_deterministic(corpus):
    maker = SegmentBatchMaker(corpus, [0, 1], segments(flip_prob=0.5), seed=3)
    batch = maker(1, 2)
    assert batch["crops"].shape == (3, 8, 112, 112) and batch["crops"].dtype == np.uint8
    assert batch["mfcc"].shape == (3, 88, 13) and batch["valid"].shape == (3, 9, 8)
    assert all(np.array_equal(batch[key], maker(1, 2)[key]) for key in batch)
    assert not np.array_equal(batch["crops"], maker(1, 3)["crops"])
    # Track 0 has 24 starts, track 1 five: 29 starts + 7 · 2 frames = 43 frames, 8 a batch.
    assert maker.steps_per_epoch() == 43 // 24
    with pytest.raises(ValueError, match="fewer than one batch"):
        SegmentBatchMaker(corpus, [1], segments(batch=6))


def test_talk_over_mixes_another_identitys_voice_under_the_whole_span(corpus):
    """`talk_over_prob`: the span's audio (track frames 13…35 for a segment at 20) plus track
    1's voice from its onset (frame 10), scaled to `snr` below the span's own speech (frames
    13…29); labels and offsets as without it."""
    config = segments(talk_over_prob=1.0, talk_over_snr_db=(3.0, 3.0))
    maker = SegmentBatchMaker(corpus, [0, 1], config, seed=0)
    audio = np.asarray(corpus.audio[13 * SPF : 36 * SPF], np.float64)
    donor = np.asarray(corpus.audio[(60 + 10) * SPF : (60 + 33) * SPF], np.float64)
    speech = np.sqrt(np.mean(audio[: 17 * SPF] ** 2))
    expected = audio + donor * speech / np.sqrt(np.mean(donor**2)) * 10 ** (-3 / 20)
    spoken = np.zeros(23, bool)
    spoken[:17] = True
    mixed = maker.donors.talk_over(np.random.default_rng(1), audio, spoken, "id0", 3.0)
    np.testing.assert_allclose(mixed, expected, rtol=1e-5, atol=1e-2)
    # Without speech in the window the voice is set against the window's whole RMS.
    quiet = maker.donors.talk_over(np.random.default_rng(1), audio, np.zeros(23, bool), "id0", 0.0)
    added = quiet - audio
    assert np.sqrt(np.mean(added**2)) == pytest.approx(np.sqrt(np.mean(audio**2)), rel=1e-4)
    sample = maker.sample(np.random.default_rng(0), 0, 20)
    plain = SegmentBatchMaker(corpus, [0, 1], segments(), seed=0).sample(
        np.random.default_rng(0), 0, 20
    )
    np.testing.assert_allclose(sample["mfcc"], mfcc_rows(expected, 22), rtol=1e-3, atol=1e-3)
    assert not np.allclose(sample["mfcc"], plain["mfcc"], atol=1e-2)
    for key in ("crops", "valid", "speaking"):
        np.testing.assert_array_equal(sample[key], plain[key])


def test_segment_dub_replaces_only_the_speech_of_its_span(corpus):
    """`dubbed`: the span's audio (track frames 13…35 for a segment at 20) with its speech
    (track frames 13…29) in track 1's voice (corpus frames 60… ) from its onset, frame 10; the
    frames after the speech keep the track's own audio."""
    maker = SegmentBatchMaker(corpus, [0, 1], segments(dubbed=True), seed=0)
    sample = maker.sample(np.random.default_rng(0), 0, 20)
    own, dubbed = sample["mfcc"], sample["mfcc_dubbed"]
    assert dubbed.shape == own.shape == (88, 13)
    # MFCC row r reads samples 160·r … 160·r + 400: rows from 4·17 + 1 on lie past the speech.
    np.testing.assert_allclose(dubbed[4 * 17 + 1 :], own[4 * 17 + 1 :], atol=1e-4)
    assert not np.allclose(dubbed[4:60], own[4:60], atol=1e-2)
    spoken = np.zeros(23, bool)
    spoken[:17] = True
    audio = np.asarray(corpus.audio[13 * SPF : 36 * SPF], np.float32)
    redone = maker.donors.dub(np.random.default_rng(1), audio, spoken, "id0")
    donor = np.asarray(corpus.audio[(60 + 10) * SPF : (60 + 27) * SPF], np.float64)
    inner = slice(160, 17 * SPF - 160)
    scale = np.sqrt(np.mean(audio[: 17 * SPF].astype(np.float64) ** 2) / np.mean(donor**2))
    np.testing.assert_allclose(redone[inner], scale * donor[inner], rtol=1e-4, atol=1e-2)
    np.testing.assert_array_equal(redone[17 * SPF :], audio[17 * SPF :])
    assert "mfcc_dubbed" not in SegmentBatchMaker(corpus, [0, 1], segments(), seed=0).sample(
        np.random.default_rng(0), 0, 20
    )
