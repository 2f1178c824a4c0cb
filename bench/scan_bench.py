"""Benchmark `syncasd scan`: clips per minute, real-time factor and memory on a CPU.

Material: the first N test-identity clips of ../shared/data at least 5 s long (sorted paths:
LivePortrait, StyleTalk, VASP, ...), each analysed over its first 5 s (`duration=5`), as a dataset
of five-second single-face clips. The scan runs in a fresh child process so that its peak RSS
and that of its workers are its own; the child samples its own and its workers' RSS every
second, to show whether memory stays flat as clips go by.

    python bench/scan_bench.py [--clips 40] [--workers 2] [--model sync-pair]
    python bench/scan_bench.py --model syncnet-v2 --weights syncnet_v2.model
    python bench/scan_bench.py --model syncnet-v2 --random-weights   # speed only

SyncNet v2's speed does not depend on its weights: without VGG's checkpoint, --random-weights
times it with a seeded random one (its offsets then mean nothing; only the timing is reported).

Target (issue 9): ≥ 30 clips per minute on 2 CPU cores (≥ 2.5× real time), memory flat.
Writes bench/results/scan_bench_<model>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SECONDS = 5.0


def pick_clips(count: int) -> list[str]:
    from syncasd import media
    from syncasd.data.splits import Split, find_videos

    split = Split.load()
    clips = [c for c in find_videos([SHARED / "clips"]) if split.split_of(c) == "test"]
    chosen = []
    for clip in clips:
        info = media.probe(clip)
        if info.duration and info.duration >= SECONDS and info.has_audio:
            chosen.append(str(clip))
        if len(chosen) == count:
            break
    return chosen


def rss_mb(pids: list[int]) -> float:
    """Resident memory (MB) of these processes now (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            continue
    return total / 2**20


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def child(args: argparse.Namespace) -> None:
    """Run one scan and print its measurements as JSON on the last line."""
    from syncasd.scan import scan

    clips = json.loads(Path(args.clip_list).read_text())
    samples: list[tuple[float, float]] = []
    start = time.perf_counter()
    stop = threading.Event()

    def sample() -> None:
        me = os.getpid()
        while not stop.wait(1.0):
            pids = [me, *children(me)]
            samples.append((round(time.perf_counter() - start, 1), round(rss_mb(pids), 1)))

    threading.Thread(target=sample, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        summary = scan(
            clips,
            Path(tmp) / "table.csv",
            workers=args.workers,
            model=args.model,
            weights=args.weights,
            duration=SECONDS,
            max_offset=15,
        )
        from syncasd.scan import read_table

        errors = [
            (r["path"], r["error"]) for r in read_table(Path(tmp) / "table.csv") if r["error"]
        ]
    elapsed = time.perf_counter() - start
    stop.set()
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "clips": summary.clips,
                "analysed": summary.analysed,
                "failed": summary.failed,
                "errors": errors,
                "seconds": round(elapsed, 1),
                "peak_rss_mb_main": round(own, 1),
                "peak_rss_mb_largest_worker": round(workers, 1),
                "rss_over_time_mb": samples,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--model", default=None, help="sync backend (default: scan's)")
    parser.add_argument("--weights", default=None, help="the backend's checkpoint")
    parser.add_argument(
        "--random-weights", action="store_true", help="time syncnet-v2 with random weights"
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--clip-list", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    from syncasd.defaults import DEFAULT_SCAN_MODEL

    args.model = args.model or DEFAULT_SCAN_MODEL
    clips = pick_clips(args.clips)
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "clips.json"
        listing.write_text(json.dumps(clips))
        if args.random_weights:
            if args.model != "syncnet-v2":
                sys.exit("--random-weights times syncnet-v2 only")
            import torch

            from syncasd.models.syncnet import SyncNetV2

            torch.manual_seed(0)
            args.weights = str(Path(tmp) / "syncnet_random.pt")
            torch.save(SyncNetV2().state_dict(), args.weights)
        command = [
            sys.executable,
            __file__,
            "--child",
            "1",
            "--clip-list",
            str(listing),
            "--workers",
            str(args.workers),
            "--model",
            args.model,
            *(["--weights", args.weights] if args.weights else []),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"scan failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    minutes = result["seconds"] / 60
    result |= {
        "model": args.model,
        "random_weights": args.random_weights,
        "workers": args.workers,
        "clip_seconds": SECONDS,
        "clips_per_minute": round(result["analysed"] / minutes, 1),
        "real_time_factor": round(result["analysed"] * SECONDS / result["seconds"], 2),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    rss = [mb for _, mb in result["rss_over_time_mb"]]
    quarter = max(1, len(rss) // 4)
    print(
        f"{args.model}: {result['analysed']} clips of {SECONDS:.0f} s ({result['failed']} failed) "
        f"in {result['seconds']:.0f} s with {args.workers} workers: "
        f"{result['clips_per_minute']} clips/min, {result['real_time_factor']}x real time"
    )
    if rss:
        print(
            f"RSS, main + workers (MB): first quarter max {max(rss[:quarter]):.0f}, "
            f"last quarter max {max(rss[-quarter:]):.0f}; peak main "
            f"{result['peak_rss_mb_main']:.0f}, largest worker "
            f"{result['peak_rss_mb_largest_worker']:.0f}"
        )
    for path, error in result["errors"]:
        print(f"failed: {path}: {error}")
    out = ROOT / "bench" / "results" / f"scan_bench_{args.model}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
