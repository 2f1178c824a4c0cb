"""The scan table, its shards, merging, filters and histograms, on tables written here (no model;
the runs on real clips are in test_cli_sync.py)."""

from __future__ import annotations

import csv

import pytest

from syncasd.errors import InputError
from syncasd.scan import (
    COLUMNS,
    TableWriter,
    histogram_path,
    list_clips,
    merge_tables,
    parse_shard,
    passes,
    plot_histograms,
    read_table,
    shard,
    write_lists,
)
from syncasd.syncmap import SyncParams


def row(path: str, offset: int = 0, prob: float = 0.9, ratio: float = 0.1, **extra) -> dict:
    r = {
        "path": path,
        "tracks": "1",
        "offset_frames": str(offset),
        "offset_ms": str(40.0 * offset),
        "confidence": "0.3",
        "prob_at_offset": str(prob),
        "offscreen_ratio": str(ratio),
        "in_sync": "true",
        "error": "",
    }
    return {**r, **extra}


def failed(path: str, error: str = "x.mp4: not a readable video") -> dict:
    return {**dict.fromkeys(COLUMNS, ""), "path": path, "error": error}


def write_table(path, rows) -> None:
    with TableWriter(path) as w:
        for r in rows:
            w.write(r)


def test_list_clips_from_a_folder_a_list_and_a_file(tmp_path):
    for name in ("b/2.mp4", "a/1.MOV", "a/notes.txt", "c.mkv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert list_clips(tmp_path) == [str(tmp_path / n) for n in ("a/1.MOV", "b/2.mp4", "c.mkv")]
    listing = tmp_path / "list.txt"
    listing.write_text("# clips\nz.mp4\n\n  a.mp4  \nz.mp4\n")
    assert list_clips(listing) == ["a.mp4", "z.mp4"]
    assert list_clips(tmp_path / "c.mkv") == [str(tmp_path / "c.mkv")]
    with pytest.raises(InputError, match="no such folder or list file"):
        list_clips(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    listing.write_text("# nothing yet\n")
    for empty in (tmp_path / "empty", listing):
        with pytest.raises(InputError, match="no clips in it"):
            list_clips(empty)


def test_shards_partition_the_sorted_list():
    clips = [f"clip{i:02d}.mp4" for i in range(11)][::-1]
    parts = [shard(clips, i, 3) for i in range(3)]
    assert sorted(c for p in parts for c in p) == sorted(clips)
    assert sum(len(p) for p in parts) == len(clips)
    assert parts[0] == ["clip00.mp4", "clip03.mp4", "clip06.mp4", "clip09.mp4"]
    assert parse_shard("2/3") == (2, 3)
    for bad in ("3/3", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(InputError, match="--shard"):
            parse_shard(bad)


def test_table_resumes_and_cuts_a_torn_last_line(tmp_path):
    table = tmp_path / "t.csv"
    write_table(table, [row("a.mp4"), failed("b.mp4")])
    with open(table, "a") as f:
        f.write("c.mp4,1,0,0.0,0.3")  # a scan killed in the middle of a row
    writer = TableWriter(table)
    assert writer.done == {"a.mp4", "b.mp4"}
    writer.write(row("d.mp4", 2))
    writer.close()
    rows = list(read_table(table))
    assert [r["path"] for r in rows] == ["a.mp4", "b.mp4", "d.mp4"]
    assert rows[1]["error"] == "x.mp4: not a readable video" and rows[2]["offset_frames"] == "2"
    with open(table, newline="") as f:
        assert next(csv.reader(f)) == list(COLUMNS)


def test_a_file_that_is_not_a_table_is_refused_and_left_alone(tmp_path):
    other = tmp_path / "mine.csv"
    other.write_text("name,value\nx,1")  # no final newline: must not be cut
    with pytest.raises(InputError, match="not a scan table"):
        TableWriter(other)
    assert other.read_text() == "name,value\nx,1"
    with pytest.raises(InputError, match="not a scan table"):
        list(read_table(other))


def test_keep_and_reject_partition_the_table_at_the_thresholds(tmp_path):
    table = tmp_path / "t.csv"
    rows = [
        row("good.mp4"),
        row("late.mp4", offset=3),
        row("weak.mp4", prob=0.3),
        row("offscreen.mp4", ratio=0.5),
        row("edge.mp4", offset=-1, prob=0.5, ratio=0.2),
        {**row("noface.mp4"), "tracks": "0", "offset_frames": "", "prob_at_offset": ""},
        failed("broken.mp4"),
    ]
    write_table(table, rows)
    keep, reject = tmp_path / "keep.txt", tmp_path / "reject.txt"
    assert write_lists(table, keep, reject) == (2, 5)
    kept, rejected = keep.read_text().split(), reject.read_text().split()
    assert kept == ["good.mp4", "edge.mp4"]
    assert sorted(kept + rejected) == sorted(r["path"] for r in rows)
    # Other thresholds: a 3-frame offset passes, a 0.3 probability passes.
    loose = SyncParams(max_abs_offset=3, min_prob_at_offset=0.3)
    assert write_lists(table, keep, None, loose) == (4, 3)
    assert keep.read_text().split() == ["good.mp4", "late.mp4", "weak.mp4", "edge.mp4"]
    assert not passes(failed("x.mp4"))


def test_merge_gives_the_union_each_clip_once_preferring_success(tmp_path):
    a, b, out = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "all.csv"
    write_table(a, [row("1.mp4"), failed("2.mp4", "a worker died"), row("3.mp4")])
    write_table(b, [row("2.mp4", 4), row("3.mp4", 9), row("4.mp4")])
    assert merge_tables([a, b], out) == 4
    merged = {r["path"]: r for r in read_table(out)}
    assert sorted(merged) == ["1.mp4", "2.mp4", "3.mp4", "4.mp4"]
    assert merged["2.mp4"]["offset_frames"] == "4" and not merged["2.mp4"]["error"]
    assert merged["3.mp4"]["offset_frames"] == "0"  # the first table's row
    with pytest.raises(InputError, match="cannot read"):
        merge_tables([a, tmp_path / "nope.csv"], tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


def test_histograms_are_written_beside_the_table(tmp_path):
    table = tmp_path / "t.csv"
    write_table(table, [row(f"{i}.mp4", offset=i % 3 - 1, prob=i / 10) for i in range(10)])
    write_table(table, [failed("bad.mp4")])
    png = plot_histograms(table)
    assert png == histogram_path(table) == tmp_path / "t_hist.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
