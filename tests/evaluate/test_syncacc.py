"""Sync accuracy (IC-SyncNet §5.1): clip offsets and the pooled table on hand-built matrices,
the backend loop on a real (randomly initialised) Light-ASD, then `syncasd eval sync-accuracy`
with the bundled sync-aware model on two validation tracks of the small corpus and on a folder
holding one clip."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import DATA, needs_shared

from syncasd.errors import InputError
from syncasd.evaluate.syncacc import (
    backend_window,
    clip_offsets,
    corpus_tracks,
    evaluate_sync_accuracy,
    sync_accuracy,
)
from syncasd.models import get_spec
from syncasd.offsets import ASDOffsets


def peaks(rows: list[int], k: int = 2, high: float = 0.9, low: float = 0.1) -> np.ndarray:
    """A (2k+1, len(rows)) matrix: `low` everywhere, `high` at row rows[t] of column t."""
    m = np.full((2 * k + 1, len(rows)), low)
    m[rows, np.arange(len(rows))] = high
    return m


ALL = np.ones(7, bool)


# --- clip_offsets ---------------------------------------------------------------------------


def test_each_five_frame_clip_reads_the_column_of_its_centre():
    # K = 2; column t peaks at row r = offset r - 2. Clips of 5 start at 0, 1, 2: their one
    # window is centred on frames 2, 3, 4 (rows 4, 2, 0: offsets +2, 0, -2).
    m = peaks([1, 1, 4, 2, 0, 3, 3])
    assert clip_offsets(m, ALL, 5).tolist() == [2, 0, -2]
    assert clip_offsets(m, ALL, 5, stride=2).tolist() == [2, -2]  # starts 0 and 2


def test_window_1_averages_every_frame_of_the_clip():
    # The same matrix as a per-frame ASD matrix: every clip averages all five of its columns.
    # [0, 5): rows 1, 1, 4, 2, 0 -> row 1 (offset -1) peaks twice, mean 0.42 against 0.26;
    # [1, 6): rows 1, 4, 2, 0, 3 once each -> a tie, the first row (-2);
    # [2, 7): rows 4, 2, 0, 3, 3 -> row 3 (+1) twice.
    m = peaks([1, 1, 4, 2, 0, 3, 3])
    assert clip_offsets(m, ALL, 5, window=1, average="prob").tolist() == [-1, -2, 1]
    assert clip_offsets(m, ALL, 5, window=1, average="logit").tolist() == [-1, -2, 1]


def test_a_tie_goes_to_the_first_row_so_a_flat_curve_is_never_found_at_zero():
    flat = np.full((5, 5), 0.5)
    assert clip_offsets(flat, np.ones(5, bool), 5, window=1).tolist() == [-2]


def test_clips_over_an_invalid_frame_are_skipped():
    m = peaks([1, 1, 4, 2, 0, 3, 3])
    valid = ALL.copy()
    valid[5] = False  # clips [1, 6) and [2, 7) cover it
    assert clip_offsets(m, valid, 5).tolist() == [2]
    valid[0] = False  # now no clip is clean
    assert clip_offsets(m, valid, 5).tolist() == []
    assert clip_offsets(m, ALL, 9).tolist() == []  # longer than the track


def test_averaging_the_windows_of_a_longer_clip_changes_the_pick():
    # Columns 2, 3, 4 (the window centres of the 7-frame clip), probabilities per row:
    #   row 4 (+2): 0.9, 0.3, 0.3 -> mean 0.5
    #   row 2 ( 0): 0.5, 0.8, 0.8 -> mean 0.7
    # L = 5 at start 0 sees column 2 alone and picks +2; L = 7 averages and picks 0.
    m = np.full((5, 7), 0.1)
    m[4, 2:5] = [0.9, 0.3, 0.3]
    m[2, 2:5] = [0.5, 0.8, 0.8]
    assert clip_offsets(m, ALL, 5, average="prob")[0] == 2
    assert clip_offsets(m, ALL, 7, average="prob").tolist() == [0]
    assert clip_offsets(m, ALL, 7, average="logit").tolist() == [0]


def test_logits_and_probabilities_average_differently():
    # One clip of two per-frame columns:
    #   row 0 (-1): 0.9999, 0.3 -> prob mean 0.64995; logit mean (9.2102 - 0.8473)/2 = 4.18
    #   row 1 ( 0): 0.7, 0.7    -> prob mean 0.7;     logit mean 0.8473
    m = np.array([[0.9999, 0.3], [0.7, 0.7], [0.1, 0.1]])
    valid = np.ones(2, bool)
    assert clip_offsets(m, valid, 2, window=1, average="prob").tolist() == [0]
    assert clip_offsets(m, valid, 2, window=1, average="logit").tolist() == [-1]


def test_bad_arguments_say_what_is_wrong():
    m = peaks([1, 1, 4, 2, 0, 3, 3])
    with pytest.raises(InputError, match="odd"):
        clip_offsets(m, ALL, 5, window=4)
    with pytest.raises(InputError, match="shorter than the window"):
        clip_offsets(m, ALL, 3, window=5)
    with pytest.raises(InputError, match="valid has shape"):
        clip_offsets(m, ALL[:6], 5)
    with pytest.raises(InputError, match=r"\(2K\+1, T\)"):
        clip_offsets(m[:4], ALL, 5)
    with pytest.raises(InputError, match="average"):
        clip_offsets(m, ALL, 5, average="mean")


# --- sync_accuracy --------------------------------------------------------------------------


def test_accuracy_is_pooled_over_tracks_with_a_tolerance_of_one_frame():
    # Track A: L = 5 offsets +2, 0, -2 (above); L = 7: one clip averaging columns 2-4, rows
    # 4, 2, 0 once each: a tie, the first row, -2.
    a = peaks([1, 1, 4, 2, 0, 3, 3])
    # Track B (6 frames): L = 5 clips centred on frames 2, 3: rows 3, 1 = offsets +1, -1.
    b = peaks([0, 0, 3, 1, 4, 4])
    result = sync_accuracy([a, b], [ALL, np.ones(6, bool)], (7, 5), model="m")
    assert result.clips == {5: 5, 7: 1}
    # L = 5: 0, +1, -1 are within ±1 of 0; +2 and -2 are not: 3 of 5.
    assert result.accuracy[5] == pytest.approx(60.0)
    assert result.accuracy[7] == 0.0
    assert result.tracks == 2
    assert list(result.accuracy) == [5, 7]  # sorted
    wide = sync_accuracy([a, b], [ALL, np.ones(6, bool)], (5,), tolerance=2)
    assert wide.accuracy[5] == 100.0


def test_clips_are_scored_against_each_tracks_own_offset_when_given():
    # Track A's clips (L = 5) find +2, 0, −2 and track B's +1, −1 (previous test). Against
    # A's own offset +2, only +2 is within ±1; against B's −1, only −1: 2 of 5.
    a = peaks([1, 1, 4, 2, 0, 3, 3])
    b = peaks([0, 0, 3, 1, 4, 4])
    valids = [ALL, np.ones(6, bool)]
    result = sync_accuracy([a, b], valids, (5,), truths=[2, -1])
    assert result.accuracy[5] == pytest.approx(40.0)
    assert sync_accuracy([a, b], valids, (5,), truths=[0, 0]).accuracy[5] == pytest.approx(60.0)
    with pytest.raises(InputError, match="1 track offsets for more tracks"):
        sync_accuracy([a, b], valids, (5,), truths=[2])
    with pytest.raises(InputError, match="3 track offsets for 2 tracks"):
        sync_accuracy([a, b], valids, (5,), truths=[2, -1, 0])


def test_a_clip_length_without_clips_is_nan_and_shown_as_such():
    result = sync_accuracy([peaks([2] * 7)], [ALL], (5, 9), model="m")
    assert result.accuracy[5] == 100.0 and result.clips == {5: 3, 9: 0}
    assert math.isnan(result.accuracy[9])
    assert result.to_dict()["accuracy"] == {"5": 100.0, "9": None}
    assert result.table().splitlines() == [
        "| clip length (frames) | 5 | 9 |",
        "|---|---|---|",
        "| m accuracy (%) | 100.00 | n/a |",
        "| clips | 3 | 0 |",
    ]


def test_no_clip_length_or_one_shorter_than_the_window_is_refused():
    with pytest.raises(InputError, match="at least one"):
        sync_accuracy([], [], ())
    with pytest.raises(InputError, match="shorter than the window"):
        sync_accuracy([], [], (3, 5), window=5)


# --- a real backend -------------------------------------------------------------------------


class Track:
    def __init__(self, n: int, labels: np.ndarray, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.crops = rng.integers(0, 256, (n, 112, 112), dtype=np.uint8)
        self.audio = rng.integers(-3000, 3000, 640 * n, dtype=np.int16)
        self.labels = labels


def test_a_backend_sees_each_track_inside_its_search_range():
    """Offsets ±2: the backend scores frames 2 … T−3 only, against the track's own audio at
    every offset (never the zeros past its ends); tracks without a clean clip there are skipped."""
    torch.manual_seed(0)
    backend = ASDOffsets(get_spec("light-asd").builder(), max_offset=2)
    assert backend_window(backend) == 1
    speaking = np.ones(16, bool)
    speaking[12] = False  # inside frames 2..13: clean 5-frame clips start at 2..7, 7-frame at 2..5
    tracks = [
        Track(16, speaking, 0),
        Track(8, np.ones(8, bool), 1),  # 4 frames inside: shorter than any clip, skipped
        Track(9, np.array([1, 1, 1, 1, 0, 1, 1, 1, 1], bool), 2),  # no clean clip inside: skipped
    ]
    result = evaluate_sync_accuracy(backend, tracks, (5, 7), model="light-asd")
    assert result.clips == {5: 6, 7: 4} and result.tracks == 1
    assert result.window == 1 and result.max_offset == 2
    track = tracks[0]
    matrix = backend.matrix(track.crops[2:14], backend.features(track.audio), 2)
    assert result.accuracy == sync_accuracy([matrix], [speaking[2:14]], (5, 7), window=1).accuracy


def test_the_window_is_what_the_backend_declares_also_through_a_wrapper_or_a_sum():
    """IC-SyncNet's columns are five-image windows; a wrapper that delegates to it (a test-time
    view, a cache) must not be scored as a per-frame backend, which would average five
    columns (nine images) per five-frame clip."""
    from syncasd.models.icsyncnet import ICSyncNet
    from syncasd.offsets import ICSyncOffsets, SumOffsets

    class Delegating:
        def __init__(self, base: object) -> None:
            self.base = base

        def __getattr__(self, name: str) -> object:
            return getattr(self.base, name)

    ic = ICSyncOffsets(ICSyncNet.from_config("cpu"), max_offset=2)
    asd = ASDOffsets(get_spec("light-asd").builder(), max_offset=2)
    assert backend_window(ic) == backend_window(Delegating(ic)) == 5
    assert backend_window(asd) == backend_window(Delegating(asd)) == 1
    # A sum of backends reads, per column, what its widest part reads.
    assert backend_window(SumOffsets(ic, asd)) == 5
    assert backend_window(SumOffsets(asd, asd)) == 1


# --- the command, on real footage -------------------------------------------------------------


def syncasd(*args: object) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "syncasd", "eval", "sync-accuracy", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def clean_clips(labels: np.ndarray, n: int) -> int:
    return sum(bool(labels[s : s + n].all()) for s in range(len(labels) - n + 1))


@needs_shared
def test_the_command_prints_the_table_and_writes_json(small_corpus, tmp_path):
    out = tmp_path / "acc.json"
    proc = syncasd(
        "val",
        "--corpus",
        small_corpus.root,
        "--clip-lengths",
        "5,15",
        "--max-offset",
        "3",
        "--limit",
        "2",
        "-o",
        out,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    labels = [t.labels for t in corpus_tracks(small_corpus, "val")]
    assert len(labels) == 2
    # Clips lie inside the search range: frames 3 … T−4 of each track.
    inside = [x[3 : len(x) - 3] for x in labels]
    assert result["clips"] == {str(n): sum(clean_clips(x, n) for x in inside) for n in (5, 15)}
    assert result["model"] == "sync-pair" and result["max_offset"] == 3
    assert result["split"] == "val" and result["window"] == 1
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "| clip length (frames) | 5 | 15 |"
    acc = [f"{result['accuracy'][n]:.2f}" for n in ("5", "15")]
    assert lines[2] == f"| sync-pair accuracy (%) | {acc[0]} | {acc[1]} |"
    # The default backend finds the true offset of real speech on most clips. (With
    # sync-light-asd alone: every clip of the VoxCeleb2 track, 15 % of the quiet VASP ID7 one,
    # whose rows differ by 0.02; with the zeros past the track in its context it found all of
    # them: the shortcut item 4 closes.)
    assert result["accuracy"]["15"] >= 50.0


@needs_shared
def test_a_folder_of_videos_scores_every_frame(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "a.mp4").symlink_to(DATA / "clips" / "vasp" / "ID1" / "015.mp4")
    out = tmp_path / "acc.json"
    proc = syncasd(folder, "--clip-lengths", "5,15", "--max-offset", "2", "-o", out)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["material"] == "folder" and result["tracks"] == 1
    # Every frame of one track is valid: of its T − 4 frames inside ±2, T − 8 clips of 5 start
    # there and T − 18 of 15.
    assert result["clips"]["5"] - result["clips"]["15"] == 10


@needs_shared
def test_bad_input_is_one_line_and_exit_2(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, word in [
        (("test", "--corpus", tmp_path), "no corpus here"),
        (("nowhere",), "neither a corpus split"),
        ((empty,), "no video"),
        (("--model", "no-such-model"), "no-such-model"),
    ]:
        proc = syncasd(*args)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("syncasd: error: "), proc.stderr
        assert word in lines[0] and "Traceback" not in proc.stderr


@needs_shared
def test_syncnet_scores_folders_of_videos_on_its_colour_crops_not_a_corpus(
    tmp_path, random_syncnet_weights
):
    weights = random_syncnet_weights  # only the plumbing is checked
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / "a.mp4").symlink_to(DATA / "clips" / "vasp" / "ID1" / "015.mp4")
    out = tmp_path / "acc.json"
    common = ("--model", "syncnet-v2", "--weights", weights, "--clip-lengths", "5,15")
    proc = syncasd(folder, *common, "--max-offset", "2", "-o", out)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["model"] == "syncnet-v2" and result["window"] == 5 and result["tracks"] == 1
    assert result["clips"]["5"] - result["clips"]["15"] == 10
    proc = syncasd("test", *common)
    assert proc.returncode == 2 and "pass a folder of videos" in proc.stderr, proc.stderr
