"""The scan table, its shards, merging, filters and histograms, on tables written here (no model;
the runs on real clips are in test_cli_sync.py), and the Ray backend against the local scan on
real clips."""

from __future__ import annotations

import csv
import os
import socket
import sys

import pytest
from conftest import DATA, needs_shared
from typer.testing import CliRunner

from syncasd.cli import app
from syncasd.errors import InputError
from syncasd.scan import (
    COLUMNS,
    ScanSummary,
    TableWriter,
    histogram_path,
    list_clips,
    merge_tables,
    parse_shard,
    passes,
    plot_histograms,
    read_table,
    scan,
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
    for name in ("b/2.mp4", "a/1.MOV", "a/notes.txt", "c.mkv", "d/cam.MTS", "d/tv.ts"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "e.mp4").mkdir()  # a folder named like a video is not a clip
    # Hidden files and folders are not clips: a Mac's resource forks, a notebook's checkpoints.
    for name in ("b/._2.mp4", ".ipynb_checkpoints/c.mkv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"\x00\x05\x16\x07")
    clips = ("a/1.MOV", "b/2.mp4", "c.mkv", "d/cam.MTS", "d/tv.ts")
    assert list_clips(tmp_path) == [str(tmp_path / n) for n in clips]
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


# ---------------------------------------------------------------------------------------------
# Ray: the same table as the local scan, from a local Ray instance with 2 workers

# As test_cli_sync.py's scans: Light-ASD's AVA weights, 2 s of each clip, offsets -3..3.
QUICK = {
    "model": "light-asd",
    "weights": str(DATA / "weights" / "light_asd_ava.model"),
    "duration": 2.0,
    "max_offset": 3,
    "threads": 1,
}
CLIPS = [DATA / "clips" / "vasp" / "ID1" / "015.mp4", DATA / "clips" / "vasp" / "ID2" / "015.mp4"]


@pytest.fixture(scope="module")
def clips_and_local_table(tmp_path_factory) -> tuple[list[str], object]:
    """Two real clips and an unreadable file, and their table from the local scan."""
    import torch

    tmp = tmp_path_factory.mktemp("ray")
    broken = tmp / "x.mp4"
    broken.write_bytes(bytes(range(256)) * 40)
    clips = [*map(str, CLIPS), str(broken)]
    table = tmp / "local.csv"
    threads = torch.get_num_threads()
    try:
        assert scan(clips, table, **QUICK) == ScanSummary(3, 0, 3, 1)
    finally:  # threads=1 is process-wide here: give the other tests their threads back
        torch.set_num_threads(threads)
    return clips, table


@needs_shared
def test_ray_scan_gives_the_local_table_and_resumes(clips_and_local_table, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed (the [ray] extra)")
    clips, local = clips_and_local_table
    table = tmp_path / "ray.csv"
    lines: list[str] = []
    summary = scan(clips, table, workers=2, ray_address="local", report=lines.append, **QUICK)
    assert summary == ScanSummary(3, 0, 3, 1)
    assert not ray.is_initialized()  # this call started Ray, so it shut it down
    assert sum(line.startswith("scan: [") for line in lines) == 3
    got, want = list(read_table(table)), list(read_table(local))
    assert sorted(got, key=lambda r: r["path"]) == sorted(want, key=lambda r: r["path"])
    bad = {r["path"]: r for r in got}[clips[2]]
    assert "not a readable video" in bad["error"] and bad["tracks"] == ""
    assert all(r["tracks"] == "1" and not r["error"] for r in got if r["path"] != clips[2])
    # Resumed: every clip is in the table, so nothing is analysed and Ray is not even started.
    before = table.read_bytes()
    assert scan(clips, table, workers=2, ray_address="local", **QUICK) == ScanSummary(3, 3, 0, 0)
    assert table.read_bytes() == before


def test_ray_missing_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(InputError, match=r'pip install "syncasd\[ray\]"'):
        scan(["x.mp4"], tmp_path / "t.csv", ray_address="local")
    assert not (tmp_path / "t.csv").exists()  # refused before the table is touched


def test_ray_bad_address_is_one_error_line(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed (the [ray] extra)")
    from syncasd.scan import _ray_connect

    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clip = tmp_path / "x.mp4"
    clip.write_bytes(b"x")
    out = CliRunner().invoke(
        app, ["scan", str(clip), "-o", str(tmp_path / "t.csv"), "--ray", f"127.0.0.1:{port}"]
    )
    assert out.exit_code == 2
    errors = [line for line in out.output.splitlines() if line.startswith("syncasd: error:")]
    assert errors == [
        f"syncasd: error: --ray 127.0.0.1:{port}: no Ray cluster answers there (Connection "
        "refused); start one with `ray start --head` or use --ray local"
    ]
    assert "Traceback" not in out.output
    with pytest.raises(InputError, match="--ray garbage: cannot connect to Ray"):
        _ray_connect(ray, "garbage", 1)
    assert not ray.is_initialized()


def test_ray_a_clip_that_kills_its_worker_gets_an_error_row_and_the_scan_goes_on():
    ray = pytest.importorskip("ray", reason="Ray is not installed (the [ray] extra)")
    from syncasd.scan import DIED, _ray_pool, _RayWorker

    class Fake(_RayWorker):  # no models (a local class: Ray ships it to the workers by value)
        def __init__(self, options: dict, cwd: str) -> None:
            self.error = ""

        def analyse(self, path: str) -> dict:
            if "die" in path:
                os._exit(1)  # as a segfault or the OOM killer would
            return {**dict.fromkeys(COLUMNS, ""), "path": path, "tracks": "0"}

    clips = [f"{i}.mp4" for i in range(3)] + ["die.mp4"] + [f"{i}.mp4" for i in range(3, 7)]
    rows: list[dict] = []
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        _ray_pool(ray, ray.remote(Fake).options(num_cpus=1), clips, {}, 2, rows.append)
    finally:
        ray.shutdown()
    assert sorted(r["path"] for r in rows) == sorted(clips)  # each clip once
    assert [r["path"] for r in rows if r["error"]] == ["die.mp4"]
    assert {r["error"] for r in rows if r["error"]} == {DIED}
