"""Labelled face tracks from real clips: word timings, VAD labels, AVA ground truth, the cache."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import DATA, needs_shared

from syncasd.data.labelled import (
    LabelledTrack,
    frames_from_intervals,
    nearest,
    read_ava_labels,
    tracks_from_ava,
    tracks_from_clips,
    word_intervals,
)
from syncasd.errors import InputError

WEIGHTS = DATA / "weights" / "light_asd_ava.model"
GRID = DATA / "clips" / "grid"


def test_frames_from_intervals_fill_short_pauses():
    # Frame centres at 0.02, 0.06, ...: [0.1, 0.2) holds frames 2, 3, 4; a 0.2 s pause is
    # filled, a 0.5 s one is not.
    assert np.flatnonzero(frames_from_intervals([(0.1, 0.2)], 10)).tolist() == [2, 3, 4]
    filled = frames_from_intervals([(0.0, 0.1), (0.3, 0.4)], 12)
    assert np.flatnonzero(filled).tolist() == list(range(0, 10))
    apart = frames_from_intervals([(0.0, 0.1), (0.6, 0.7)], 20)
    assert np.flatnonzero(apart).tolist() == [0, 1, 15, 16]


def test_segments_of_a_track():
    labels = np.array([0, 1, 1, 0, 0, 1, 1, 1], bool)
    track = LabelledTrack(
        "v", "e", np.zeros((8, 112, 112), np.uint8), np.zeros(8 * 640), labels, np.arange(8) / 25
    )
    assert track.segments() == [(1, 3), (5, 8)]


def test_nearest_timestamp():
    times = np.array([0.0, 0.033, 0.067, 0.1])
    assert nearest(times, np.array([0.0, 0.04, 0.06, 0.2, -1.0])).tolist() == [0, 1, 2, 3, 0]
    assert nearest(np.array([5.0]), np.array([1.0, 9.0])).tolist() == [0, 0]


@needs_shared
def test_word_timings_of_grid_and_lrs2():
    words = word_intervals(GRID / "bbaf2n.mpg")  # units of 1/25000 s, "sil" left out
    assert words[0] == (0.95, 1.18) and words[-1] == (1.89, 2.12) and len(words) == 6
    assert word_intervals(GRID / "id2_vcd_swwp2s.mpg")[0][0] > 0  # swwp2s.align
    lrs2 = word_intervals(DATA / "clips" / "lrs2" / "00009.mp4")
    assert lrs2[0] == (0.08, 0.33) and len(lrs2) == 12
    assert word_intervals(DATA / "clips" / "lrs2" / "00001.mp4") is None  # transcript only
    assert word_intervals(GRID / "brbk7n.mpg") is None


@needs_shared
def test_tracks_from_real_clips(eval_tracks):
    by_id = {t.video_id: t for t in eval_tracks}
    grid = by_id["grid/bbaf2n"]
    assert len(grid) == 74 and grid.crops.shape == (74, 112, 112) and grid.crops.dtype == np.uint8
    assert grid.audio.shape == (74 * 640,) and grid.audio.dtype == np.int16
    assert grid.segments() == [(24, 53)]  # the word timings, not the VAD
    vasp = by_id["ID1/014"]  # 4 s of a VASP interview clip: Silero VAD labels
    assert len(vasp) == 100 and vasp.segments() == [(3, 92), (96, 100)]
    np.testing.assert_allclose(vasp.timestamps[:3], [0.0, 0.04, 0.08])
    assert not by_id["liveportrait/d6"].labels.any()  # a music bed: labelled negative


@needs_shared
def test_tracks_come_back_from_the_cache(eval_tracks, monkeypatch):
    import syncasd.pipeline

    def no_detection(*args, **kwargs):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(syncasd.pipeline.Detector, "__call__", no_detection)
    again = tracks_from_clips(
        [GRID / "bbaf2n.mpg"], model="light-asd", weights=str(WEIGHTS), duration=4.0, threads=1
    )  # threads does not change the crops, so it shares the cache entry
    first = next(t for t in eval_tracks if t.video_id == "grid/bbaf2n")
    np.testing.assert_array_equal(again[0].crops, first.crops)
    np.testing.assert_array_equal(again[0].labels, first.labels)


@needs_shared
def test_tracks_from_ava_ground_truth(tmp_path):
    """The caller's boxes and labels at 30 fps timestamps join the 25 fps model frames."""
    video = DATA / "clips" / "vasp" / "ID1" / "014.mp4"  # 224×224: the face fills the frame
    gt = tmp_path / "gt.csv"
    with open(gt, "w", newline="") as f:
        out = csv.writer(f)
        for k in range(60):  # 2 s at 30 fps; speaking from 1 s on
            label = "SPEAKING_AUDIBLE" if k >= 30 else "NOT_SPEAKING"
            out.writerow(["014", f"{k / 30:.3f}", 0.1, 0.05, 0.9, 0.95, label, "014:a"])
    labels = read_ava_labels(gt)
    assert len(labels[("014", "014:a")][0]) == 60
    tracks = tracks_from_ava([video], gt, model="light-asd", weights=str(WEIGHTS), cache=False)
    assert len(tracks) == 1
    t = tracks[0]
    assert t.entity == "014:a" and len(t) == 50  # model frames 0..49 (timestamps up to 1.967 s)
    assert t.crops.shape == (50, 112, 112)
    # Model frame 25 (1.00 s) is nearest to the 30 fps row at 1.000 s: speaking from there.
    assert np.flatnonzero(t.labels)[0] == 25 and t.labels[25:].all()


def test_missing_clip_is_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        tracks_from_clips([tmp_path / "nope.mp4"])
    with pytest.raises(InputError, match="cannot read"):
        read_ava_labels(tmp_path / "nope.csv")


@needs_shared
def test_a_detector_must_keep_its_crops():
    from syncasd.pipeline import Detector

    with pytest.raises(ValueError, match="keep_crops"):
        tracks_from_clips(
            [GRID / "bbaf2n.mpg"],
            detector=Detector(model="light-asd", weights=str(WEIGHTS)),
            cache=False,
        )


def test_lrw_ar_word_table(tmp_path):
    # The first word has no times: the clip starts inside it, so it runs from 0 to the next.
    clip = tmp_path / "00001.mp4"
    (tmp_path / "00001.csv").write_text(
        "conf,end,start,word\n,,,qala\n0.9,0.69,0.48,inna\n0.98,1.17,0.69,alintikhabat\n"
    )
    assert word_intervals(clip) == [(0.0, 0.48), (0.48, 0.69), (0.69, 1.17)]
    labels = frames_from_intervals(word_intervals(clip), 30)
    assert labels[:29].all() and not labels[29]  # 1.17 s = frame 29.25: frame 29's centre past it


@needs_shared
def test_lrw_ar_clip_is_labelled_from_its_table():
    words = word_intervals(DATA / "clips" / "lrw_ar" / "00139.mp4")
    assert words[0][0] == 0.0 and words[-1] == (0.689125, 1.17)
