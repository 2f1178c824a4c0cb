"""Speaking turns and the CSV / JSON / RTTM writers, on small hand-made results."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from syncasd.results import (
    Result,
    Track,
    atomic_write,
    speaking_turns,
    write_csv,
    write_json,
    write_rttm,
)

AVA_HEADER = (
    "video_id,frame_timestamp,entity_box_x1,entity_box_y1,entity_box_x2,entity_box_y2,"
    "label,entity_id,score"
).split(",")


def _track(track_id: int, start: int, probs: list[float], shot: int = 0) -> Track:
    n = len(probs)
    frames = np.arange(start, start + n)
    # 100×160 boxes sliding from x1 = -20 to x1 = 600: they leave a 640-wide frame on both sides.
    boxes = np.stack(
        [np.linspace(-20, 600, n), np.full(n, 40.0), np.linspace(80, 700, n), np.full(n, 200.0)],
        axis=1,
    )
    p = np.array(probs)
    return Track(track_id, shot, frames, boxes, np.log(p / (1 - p)), p)


# Track 0 on frames 10..29: speaking (≥ 0.5) on indices 1-2, 4-5 and 9-19.
PROBS0 = [0.1, 0.6, 0.7, 0.2, 0.9, 0.5, 0.1, 0.1, 0.1] + [0.8] * 11
# Track 1 on frames 0..5: speaking on indices 2-4.
PROBS1 = [0.2, 0.3, 0.95, 0.95, 0.55, 0.01]


@pytest.fixture
def result() -> Result:
    tracks = [_track(0, 10, PROBS0), _track(1, 0, PROBS1, shot=1)]
    return Result(
        path="/videos/talk.mp4",
        video_id="talk",
        width=640,
        height=480,
        source_fps=30.0,
        start=2.0,
        n_frames=30,
        tracks=tracks,
        turns=speaking_turns(tracks, 2.0),
    )


# --- speaking_turns ---------------------------------------------------------------------------


def _spans(turns) -> list[tuple[int, float, float]]:
    return [(u.track, round(u.start, 6), round(u.end, 6)) for u in turns]


def test_speaking_turns_runs(result):
    # Frame f lies at 2.0 + f/25; a run of frames [a, b) is the turn [2 + a/25, 2 + b/25).
    assert _spans(speaking_turns(result.tracks, 2.0)) == [
        (1, 2.08, 2.2),  # frames 2..4
        (0, 2.44, 2.52),  # frames 11..12
        (0, 2.56, 2.64),  # frames 14..15 (0.5 is speaking: the threshold is inclusive)
        (0, 2.76, 3.2),  # frames 19..29, up to the end of the track
    ]


def test_speaking_turns_threshold(result):
    assert _spans(speaking_turns(result.tracks, 0.0, threshold=0.85)) == [
        (1, 0.08, 0.16),
        (0, 0.56, 0.6),
    ]


def test_speaking_turns_merge_gap(result):
    # The one-frame gap (0.04 s) merges, the three-frame gap (0.12 s) does not.
    assert _spans(speaking_turns(result.tracks, 2.0, merge_gap=0.05)) == [
        (1, 2.08, 2.2),
        (0, 2.44, 2.64),
        (0, 2.76, 3.2),
    ]
    assert _spans(speaking_turns(result.tracks, 2.0, merge_gap=0.13))[1:] == [(0, 2.44, 3.2)]


def test_speaking_turns_min_duration(result):
    # Turns of 2 frames (0.08 s) go; 3 frames (0.12 s) and 11 frames (0.44 s) stay.
    assert _spans(speaking_turns(result.tracks, 2.0, min_duration=0.1)) == [
        (1, 2.08, 2.2),
        (0, 2.76, 3.2),
    ]
    # Merging comes first: the merged 0.2 s turn survives a 0.15 s minimum.
    merged = speaking_turns(result.tracks, 2.0, min_duration=0.15, merge_gap=0.05)
    assert _spans(merged) == [(0, 2.44, 2.64), (0, 2.76, 3.2)]
    assert merged[0].duration == pytest.approx(0.2)


# --- writers ----------------------------------------------------------------------------------


def test_write_csv(result, tmp_path):
    path = tmp_path / "out.csv"
    write_csv(result, path)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    assert header[:9] == AVA_HEADER
    assert len(body) == len(PROBS0) + len(PROBS1)
    records = [dict(zip(header, r, strict=True)) for r in body]

    frames = [int(r["model_frame"]) for r in records]
    assert frames == sorted(frames)  # rows in time order, tracks interleaved
    for r in records:
        frame, track = int(r["model_frame"]), int(r["track"])
        assert r["video_id"] == "talk"
        assert r["entity_id"] == f"talk:{track}"
        assert float(r["frame_timestamp"]) == pytest.approx(2.0 + frame / 25, abs=5e-4)
        box = [float(r[c]) for c in AVA_HEADER[2:6]]
        assert all(0.0 <= v <= 1.0 for v in box)
        prob = PROBS0[frame - 10] if track == 0 else PROBS1[frame]
        assert float(r["score"]) == pytest.approx(prob, abs=1e-6)
        assert r["label"] == ("SPEAKING_AUDIBLE" if prob >= 0.5 else "NOT_SPEAKING")

    first = records[0]  # track 1, frame 0: box (-20, 40, 80, 200) in a 640×480 frame
    assert [float(first[c]) for c in AVA_HEADER[2:6]] == pytest.approx(
        [0.0, 40 / 480, 80 / 640, 200 / 480], abs=1e-6
    )
    last = records[-1]  # track 0, frame 29: box (600, 40, 700, 200), clipped on the right
    assert [float(last[c]) for c in AVA_HEADER[2:6]] == pytest.approx(
        [600 / 640, 40 / 480, 1.0, 200 / 480], abs=1e-6
    )


def test_write_json(result, tmp_path):
    path = tmp_path / "out.json"
    write_json(result, path)
    doc = json.loads(path.read_text())
    assert doc["video_id"] == "talk" and doc["n_frames"] == 30
    assert len(doc["tracks"]) == 2
    for saved, track in zip(doc["tracks"], result.tracks, strict=True):
        assert saved["id"] == track.id and saved["shot"] == track.shot
        assert (saved["start_frame"], saved["end_frame"]) == (track.start, track.end)
        n = track.end - track.start + 1
        assert len(saved["boxes"]) == len(saved["probs"]) == len(saved["logits"]) == n
        np.testing.assert_allclose(saved["probs"], track.probs, atol=1e-4)
    assert doc["tracks"][0]["start_time"] == 2.4 and doc["tracks"][0]["end_time"] == 3.2
    assert len(doc["turns"]) == 4
    assert doc["turns"][0] == {"track": 1, "start": 2.08, "end": 2.2}


def test_write_rttm(result, tmp_path):
    path = tmp_path / "out.rttm"
    write_rttm(result, path)
    lines = path.read_text().splitlines()
    assert len(lines) == 4
    fields = [line.split() for line in lines]
    assert all(len(f) == 10 for f in fields)
    assert fields[0] == [
        "SPEAKER",
        "talk",
        "1",
        "2.080",
        "0.120",
        "<NA>",
        "<NA>",
        "talk:1",
        "<NA>",
        "<NA>",
    ]
    assert [f[3:5] for f in fields[1:]] == [
        ["2.440", "0.080"],
        ["2.560", "0.080"],
        ["2.760", "0.440"],
    ]


def test_atomic_write_commits_on_success(tmp_path):
    path = tmp_path / "out.txt"
    with atomic_write(path) as f:
        f.write("done\n")
        assert not path.exists()  # nothing visible until the block ends
    assert path.read_text() == "done\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    path = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_write(path) as f:
        f.write("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_write(path) as f:
        f.write("new")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
