"""`syncasd sync`, `syncasd scan` and `syncasd scan-merge` as a user runs them, on real clips.

Light-ASD's AVA weights stand in for the model where the test does not depend on the offsets
being right (2 s of each clip, offsets -3..3, to be quick); the last test needs the bundled
sync-aware default model.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
from conftest import DATA, SYNC_TRACK_KEYS, lag, needs_shared, restamped

from syncasd.cli import no_speaker_note
from syncasd.data.compose import replace_audio
from syncasd.media import read_audio
from syncasd.scan import COLUMNS
from syncasd.syncmap import SyncParams
from syncasd.syncrun import shift_audio

pytestmark = needs_shared

WEIGHTS = DATA / "weights" / "light_asd_ava.model"
MODEL = ("--model", "light-asd", "--weights", WEIGHTS)
QUICK = ("--duration", "2", "--max-offset", "3")
CLIP_A = DATA / "clips" / "vasp" / "ID1" / "015.mp4"  # 4.7 s
CLIP_B = DATA / "clips" / "vasp" / "ID2" / "015.mp4"  # 4.3 s


def syncasd(*args: object) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "syncasd", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def assert_one_error_line(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("syncasd: error: ") and "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def garbage(path: Path) -> Path:
    path.write_bytes(bytes(range(256)) * 40)
    return path


def video_packets(path) -> list[tuple[bytes, float]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [(bytes(p), round(float(p.pts * p.time_base), 4)) for p in c.demux(s) if p.size]


def rows(table: Path) -> list[dict]:
    with open(table, newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == COLUMNS
        return list(reader)


# ---------------------------------------------------------------------------------------------
# sync


def test_sync_json_lines_one_per_video_and_an_error_object(tmp_path):
    missing = tmp_path / "nope.mp4"
    proc = syncasd("sync", CLIP_A, missing, CLIP_B, "--json", *QUICK, *MODEL)
    assert_one_error_line(proc, "nope.mp4", "no such file")
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [d["video"] for d in lines] == [str(CLIP_A), str(missing), str(CLIP_B)]
    assert set(lines[1]) == {"video", "error"} and "no such file" in lines[1]["error"]
    for doc in (lines[0], lines[2]):
        assert set(doc) == {"video", "tracks"} and len(doc["tracks"]) == 1
        track = doc["tracks"][0]
        assert set(track) == SYNC_TRACK_KEYS
        assert -3 <= track["offset_frames"] <= 3
        assert track["offset_ms"] == 40.0 * track["offset_frames"]
        assert 0 <= track["prob_at_offset"] <= 1 and 0 <= track["offscreen_ratio"] <= 1
        assert isinstance(track["in_sync"], bool)


def test_sync_prints_every_track_and_writes_json_and_plots(tmp_path):
    out = tmp_path / "out"
    proc = syncasd("sync", CLIP_A, "-o", out, "--plot", *QUICK, *MODEL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{CLIP_A}: 1 face track(s)\n  track 0 (frames 0-49): offset ")
    for words in ("frames (", " ms), confidence ", "prob at offset ", "off-screen "):
        assert words in proc.stdout
    assert "in sync" in proc.stdout  # "in sync" or "not in sync (...)"
    assert sorted(p.name for p in out.iterdir()) == ["015.sync.json", "015.track0.png"]
    detail = json.loads((out / "015.sync.json").read_text())
    assert detail["tracks"][0]["first_frame"] == 0 and detail["tracks"][0]["last_frame"] == 49
    assert len(detail["tracks"][0]["mean_curve"]) == 7
    assert (out / "015.track0.png").read_bytes()[:4] == b"\x89PNG"


def test_sync_bad_input_exits_2_with_one_line(tmp_path):
    assert_one_error_line(
        syncasd("sync", garbage(tmp_path / "x.mp4"), *QUICK, *MODEL), "not a readable video"
    )
    no_audio = DATA / "clips" / "liveportrait" / "d0.mp4"
    assert_one_error_line(syncasd("sync", no_audio, *QUICK, *MODEL), "no audio track")
    assert_one_error_line(syncasd("sync", CLIP_A, "--max-offset", "500", *MODEL), "max offset")


def test_fix_refuses_its_input_and_more_than_one_video(tmp_path):
    copy = tmp_path / "clip.mp4"
    copy.write_bytes(CLIP_A.read_bytes())
    proc = syncasd("sync", copy, "--fix", tmp_path / "." / "clip.mp4", *MODEL)
    assert_one_error_line(proc, "is the input video")
    assert copy.read_bytes() == CLIP_A.read_bytes()
    proc = syncasd("sync", copy, CLIP_B, "--fix", tmp_path / "fixed.mp4", *MODEL)
    assert_one_error_line(proc, "exactly one input video")
    assert_one_error_line(syncasd("sync", copy, "--plot", *MODEL), "--plot needs -o")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_fix_moves_the_audio_by_the_measured_offset_and_copies_the_video(tmp_path):
    delayed, fixed = tmp_path / "delayed.mp4", tmp_path / "fixed.mp4"
    shift_audio(CLIP_A, delayed, 2)
    proc = syncasd("sync", delayed, "--fix", fixed, "--json", *QUICK, *MODEL)
    assert proc.returncode == 0, proc.stderr
    offset = json.loads(proc.stdout)["tracks"][0]["offset_frames"]
    assert f"audio moved by {-offset:+d} frames" in proc.stderr
    assert lag(read_audio(delayed), read_audio(fixed)) == -offset * 640
    assert video_packets(fixed) == video_packets(delayed) == video_packets(CLIP_A)


# ---------------------------------------------------------------------------------------------
# scan


@pytest.fixture(scope="module")
def first_scan(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess, bytes]:
    """`scan` of two clips (a list file) into a new table: the table, the run, its bytes."""
    tmp = tmp_path_factory.mktemp("scan")
    listing = tmp / "two.txt"
    listing.write_text(f"{CLIP_A}\n{CLIP_B}\n")
    table = tmp / "table.csv"
    proc = syncasd("scan", listing, "-o", table, "--threads", "1", *QUICK, *MODEL)
    return table, proc, table.read_bytes()


def test_scan_writes_one_row_per_clip(first_scan):
    table, proc, _ = first_scan
    assert proc.returncode == 0, proc.stderr
    assert "scan: 2 clips, 0 already in" in proc.stderr and "2 to analyse" in proc.stderr
    got = rows(table)
    assert [r["path"] for r in got] == [str(CLIP_A), str(CLIP_B)]
    for r in got:
        assert r["tracks"] == "1" and r["error"] == "" and r["in_sync"] in ("true", "false")
        assert float(r["offset_ms"]) == 40.0 * int(r["offset_frames"])
        assert 0 <= float(r["prob_at_offset"]) <= 1
    assert (table.parent / "table_hist.png").read_bytes()[:4] == b"\x89PNG"


def test_scan_resumes_and_records_a_broken_file(first_scan, tmp_path):
    table0, _, before = first_scan
    table = tmp_path / "table.csv"
    table.write_bytes(before)
    broken = garbage(tmp_path / "x.mp4")
    listing = tmp_path / "three.txt"
    listing.write_text(f"{CLIP_A}\n{CLIP_B}\n{broken}\n")
    keep, reject = tmp_path / "keep.txt", tmp_path / "reject.txt"
    loose = ("--max-abs-offset", "3", "--min-prob", "0", "--max-offscreen", "1")
    proc = syncasd(
        "scan", listing, "-o", table, "--keep", keep, "--reject", reject, *loose, *QUICK, *MODEL
    )
    assert proc.returncode == 0, proc.stderr
    assert "scan: 3 clips, 2 already in" in proc.stderr and "1 to analyse" in proc.stderr
    assert proc.stderr.count("scan: [") == 1  # one clip analysed: the new one
    assert table.read_bytes().startswith(before)  # the old rows are untouched
    got = rows(table)
    assert [r["path"] for r in got] == [str(CLIP_A), str(CLIP_B), str(broken)]
    assert "not a readable video" in got[2]["error"] and got[2]["tracks"] == ""
    # The loose thresholds pass every clip with a face; the broken one fails.
    assert keep.read_text().split() == [str(CLIP_A), str(CLIP_B)]
    assert reject.read_text().split() == [str(broken)]
    # Default thresholds: the lists still partition the clips.
    proc = syncasd("scan", listing, "-o", table, "--keep", keep, "--reject", reject, *MODEL)
    assert proc.returncode == 0 and "0 to analyse" in proc.stderr
    kept, rejected = keep.read_text().split(), reject.read_text().split()
    assert sorted(kept + rejected) == sorted(map(str, (CLIP_A, CLIP_B, broken)))
    assert not set(kept) & set(rejected)
    assert len(rows(table)) == 3


def test_scan_with_two_workers_gives_the_same_rows(first_scan, tmp_path):
    table0, _, _ = first_scan
    listing = tmp_path / "two.txt"
    listing.write_text(f"{CLIP_B}\n{CLIP_A}\n")
    table = tmp_path / "t2.csv"
    proc = syncasd("scan", listing, "-o", table, "--workers", "2", "--threads", "1", *QUICK, *MODEL)
    assert proc.returncode == 0, proc.stderr
    by_path = sorted(rows(table), key=lambda r: r["path"])
    assert by_path == sorted(rows(table0), key=lambda r: r["path"])


def test_shards_partition_the_clips_and_merge_gives_the_union(tmp_path):
    clips = sorted(str(garbage(tmp_path / f"{i}.mp4")) for i in range(5))
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(clips) + "\n")
    parts = []
    for i in range(2):
        part = tmp_path / f"part{i}.csv"
        proc = syncasd("scan", listing, "-o", part, "--shard", f"{i}/2", *MODEL)
        assert proc.returncode == 0, proc.stderr
        parts.append([r["path"] for r in rows(part)])
    assert parts == [clips[0::2], clips[1::2]]
    merged = tmp_path / "all.csv"
    proc = syncasd("scan-merge", tmp_path / "part0.csv", tmp_path / "part1.csv", "-o", merged)
    assert proc.returncode == 0, proc.stderr
    assert sorted(r["path"] for r in rows(merged)) == clips
    assert all(r["error"] for r in rows(merged))
    assert (tmp_path / "all_hist.png").exists()


def test_threshold_defaults_in_the_help_are_syncparams():
    p = SyncParams()
    assert (p.min_prob_at_offset, p.max_offscreen_ratio, p.max_abs_offset) == (0.5, 0.2, 1)
    text = syncasd("scan", "--help").stdout
    for words in ("default 0.5", "default 0.2", "default 1"):
        assert words in text


# ---------------------------------------------------------------------------------------------
# The sync-aware default model (bundled weights)


def test_default_model_fix_removes_a_known_delay(tmp_path):
    delayed, fixed = tmp_path / "delayed.mp4", tmp_path / "fixed.mp4"
    shift_audio(CLIP_A, delayed, 5)
    proc = syncasd("sync", delayed, "--fix", fixed, "--json")
    assert proc.returncode == 0, proc.stderr
    assert abs(json.loads(proc.stdout)["tracks"][0]["offset_frames"] - 5) <= 1
    assert abs(lag(read_audio(CLIP_A), read_audio(fixed))) <= 640  # back within one frame


def test_a_soundtrack_a_second_and_a_half_early_is_found_with_a_wider_search(tmp_path):
    """Real clips can be a second or more off: --max-offset 50 finds a 40-frame (1.6 s) lead."""
    early = tmp_path / "early.mp4"
    shift_audio(DATA / "clips" / "voxceleb2" / "id00100_yMLqymKvTfA_00046.mp4", early, -40)
    proc = syncasd("sync", early, "--max-offset", "50", "--json")
    assert proc.returncode == 0, proc.stderr
    (track,) = json.loads(proc.stdout)["tracks"]
    assert abs(track["offset_frames"] + 40) <= 1 and track["offset_ms"] == pytest.approx(
        40.0 * track["offset_frames"]
    )
    assert track["confidence"] >= 0.4 and not track["in_sync"]  # a clear peak (0.57), far off


def test_an_audio_stream_that_starts_late_in_its_container_is_an_offset(tmp_path):
    """LRS2 00001 (in sync) remuxed with its audio stream starting 0.4 s after the video, no
    sample changed: players play the voice 10 frames late, and so does `sync`."""
    late = restamped(DATA / "clips" / "lrs2" / "00001.mp4", tmp_path / "late.mp4", 0.4)
    proc = syncasd("sync", late, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tracks"][0]["offset_frames"] == 10  # measured 10


def test_audio_lag_option_sets_the_weights_clock():
    """A GRID sentence, recorded in sync: 0 with the registry's clock for our weights (their
    training clips' audio lies 40 ms late), -1 on that training clock (`--audio-lag-ms 0`)."""
    grid = DATA / "clips" / "grid" / "bbaf2n.mpg"
    offsets = []
    for extra in ([], ["--audio-lag-ms", "0"]):
        proc = syncasd("sync", grid, "--json", *extra)
        assert proc.returncode == 0, proc.stderr
        offsets.append(json.loads(proc.stdout)["tracks"][0]["offset_frames"])
    assert offsets == [0, -1]


def test_detect_notes_an_offset_soundtrack_and_sync_fix_repairs_it(tmp_path):
    """LivePortrait d20's voice runs 7 frames (280 ms) behind its lips: the default model
    finds no face speaking in sync and says how to check; after `sync --fix` it does."""
    d20, fixed = DATA / "clips" / "liveportrait" / "d20.mp4", tmp_path / "fixed.mp4"
    proc = syncasd("detect", d20, "-o", tmp_path / "before", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "0 speaking turn(s)" in proc.stderr
    assert "no face speaks in sync with the audio" in proc.stderr and "syncasd sync" in proc.stderr
    proc = syncasd("sync", d20, "--fix", fixed, "--json")
    assert json.loads(proc.stdout)["tracks"][0]["offset_frames"] == 7  # +6 before stop 30's clock
    proc = syncasd("detect", fixed, "-o", tmp_path / "after", "--no-progress")
    assert proc.returncode == 0 and "no face speaks in sync" not in proc.stderr, proc.stderr
    probs = np.array(json.load(open(tmp_path / "after" / "fixed.json"))["tracks"][0]["probs"])
    assert (probs >= 0.5).mean() > 0.4  # measured 0.57 (0.63 with the fix by 6); before: 0


def test_detect_align_says_what_it_tried_when_no_face_speaks(tmp_path):
    """LivePortrait d12: animated faces under a voice that is none of theirs. With --align the
    note does not send the user back to --align: no face voted, so nothing was moved."""
    proc = syncasd("detect", DATA / "clips" / "liveportrait" / "d12.mp4", "-o", tmp_path, "--align")
    assert proc.returncode == 0, proc.stderr
    assert "0 speaking turn(s)" in proc.stderr and "audio moved" not in proc.stderr
    assert "--align found no face whose lips follow the voice" in proc.stderr
    assert "detect again with --align" not in proc.stderr
    alignment = json.loads((tmp_path / "d12.json").read_text())["metadata"]["alignment"]
    assert alignment == {"offset_frames": 0, "offset_ms": 0.0, "speech_frames": 0, "applied": False}


def test_the_no_speaker_note_follows_what_align_did():
    def note(alignment: dict | None) -> str:
        return no_speaker_note(
            SimpleNamespace(metadata={"alignment": alignment} if alignment else {})
        )

    assert "detect again with --align" in note(None)
    moved = {"offset_frames": -6, "offset_ms": -240.0, "speech_frames": 90, "applied": True}
    assert "even with the audio moved by -6 frames (--align)" in note(moved)
    assert "--max-offset 50" in note(moved) and "detect again" not in note(moved)
    in_sync = {"offset_frames": 1, "offset_ms": 40.0, "speech_frames": 90, "applied": False}
    assert "read the soundtrack in sync (offset +1 frames)" in note(in_sync)
    assert "no face whose lips follow" not in note(in_sync)


def speaking_share(result_json: Path) -> float:
    probs = np.concatenate([t["probs"] for t in json.loads(result_json.read_text())["tracks"]])
    return float((probs >= 0.5).mean())


def test_detect_align_scores_a_late_soundtrack_as_if_it_were_in_sync(tmp_path):
    """LRS2 00001 (BBC footage, in sync) with its audio made 5 frames late: the default finds
    hardly anyone speaking; --align measures +5, moves the audio back and finds the speaker
    again. The original is left as it is."""
    lrs2, late = DATA / "clips" / "lrs2" / "00001.mp4", tmp_path / "late.mp4"
    shift_audio(lrs2, late, 5)
    proc = syncasd("detect", late, "-o", tmp_path / "plain", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    # Measured 0.067 (one short turn; median probability 0.20); 0.0 with the default until
    # stop 42, light-syncnet's gate, which then printed the no-speaker note.
    assert speaking_share(tmp_path / "plain" / "late.json") < 0.1
    proc = syncasd("detect", late, lrs2, "-o", tmp_path / "aligned", "--align", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "audio moved by +5 frames (--align)" in proc.stderr
    moved = json.loads((tmp_path / "aligned" / "late.json").read_text())["metadata"]["alignment"]
    assert (moved["offset_frames"], moved["offset_ms"], moved["applied"]) == (5, 200.0, True)
    assert moved["speech_frames"] > 50  # 81 of the track's speech explained at +5
    assert speaking_share(tmp_path / "aligned" / "late.json") > 0.75  # 0.84; original 0.87
    kept = json.loads((tmp_path / "aligned" / "00001.json").read_text())["metadata"]
    assert kept["alignment"]["offset_frames"] == 0 and not kept["alignment"]["applied"]
    # With --require-sync, sync is measured on the moved audio: in sync there.
    proc = syncasd("detect", late, "-o", tmp_path / "gated", "--align", "--require-sync")
    assert proc.returncode == 0, proc.stderr
    track = json.loads((tmp_path / "gated" / "late.json").read_text())["tracks"][0]
    probs, in_sync = np.array(track["probs"]), np.array(track["sync_probs"])
    assert track["sync"]["offset_frames"] == 0 and np.all(probs <= in_sync + 1e-6)
    assert (probs >= 0.5).mean() > 0.5  # measured 0.60 (0.84 without the gate)


def test_a_drifting_soundtrack_is_measured_and_named(tmp_path):
    """A 30 s clip whose audio runs 0.6 % slow (6 ms later every second, 360 ms a minute, as a
    recorder with its own audio clock drifts): the offset of each 10 s stretch climbs, and the
    drift is said; the clip as it is gets no such note; `--fix --fix-drift` repairs it."""
    clip = DATA / "clips" / "styletalk" / "Obama_clip2.mp4"  # 30 s, one face
    audio = read_audio(clip).astype(np.float64)
    t = np.arange(len(audio))
    slow = np.interp(t / 1.006, t, audio).round().astype(np.int16)  # heard at t: said at t/1.006
    drifting = tmp_path / "drifting.mp4"
    replace_audio(clip, drifting, audio=slow)
    out = tmp_path / "out"
    proc = syncasd("sync", clip, "--model", "light-syncnet", "-o", out)
    assert proc.returncode == 0 and "drift:" not in proc.stdout, proc.stdout

    # --fix-drift also reports the drifting clip as a plain run does.
    fixed = tmp_path / "fixed.mp4"
    proc = syncasd(
        "sync", drifting, "--model", "light-syncnet", "-o", out, "--fix", fixed, "--fix-drift"
    )
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stdout.splitlines() if "drift:" in line]
    assert len(notes) == 1 and "ms per minute later" in notes[0], proc.stdout
    assert proc.stdout.index(notes[0]) > proc.stdout.index(str(drifting))
    assert "ms per minute earlier to remove track 0's offset and drift" in proc.stderr

    own, slowed = (
        json.load(open(out / f"{p.stem}.sync.json"))["tracks"][0] for p in (clip, drifting)
    )
    assert [o["first_frame"] for o in slowed["offsets_over_time"]] == [0, 250, 500]
    # Added lag at the stretches' centres (5, 15, 25 s): 30, 90, 150 ms = 0.75, 2.25, 3.75 frames.
    added = [
        b["offset_frames"] - a["offset_frames"]
        for a, b in zip(own["offsets_over_time"], slowed["offsets_over_time"], strict=True)
    ]
    np.testing.assert_allclose(added, [0.75, 2.25, 3.75], atol=0.5)
    assert abs(own["drift_ms_per_min"]) < 150
    assert slowed["drift_ms_per_min"] - own["drift_ms_per_min"] == pytest.approx(360, abs=60)

    # The repaired copy's stretches sit at 0, without drift.
    proc = syncasd("sync", fixed, "--model", "light-syncnet", "-o", out)
    assert proc.returncode == 0 and "drift:" not in proc.stdout, proc.stdout
    repaired = json.load(open(out / "fixed.sync.json"))["tracks"][0]
    assert abs(repaired["drift_ms_per_min"]) < 40
    assert all(abs(o["offset_frames"]) <= 0.5 for o in repaired["offsets_over_time"])
