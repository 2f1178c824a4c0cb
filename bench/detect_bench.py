"""Benchmark `syncasd detect`: real-time factor, per-stage ms per frame, peak RSS.

Inputs are composed from VASP clips in ../shared/data (two faces side by side, 1280×720,
25 fps, one voice) and cached:

    python bench/detect_bench.py                 # 60 s two-face 720p video
    python bench/detect_bench.py --long          # ... and a 10-minute one (built once, ~10 min)
    python bench/detect_bench.py --detect-every 2 --scoring demo
    python bench/detect_bench.py --model sync-light-talknet-gated
    python bench/detect_bench.py --align         # + the sync matrices, and a second pass if moved
    python bench/detect_bench.py --wide          # a 1080p wide shot of four 70-px faces instead
    python bench/detect_bench.py --wide --zoom-size 0   # ... without zooming into small faces

Each measurement runs in a fresh child process so its peak RSS is its own; the child samples
its RSS every second to show whether memory stays flat as the video goes on.
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
CLIPS = [SHARED / "clips/vasp/ID1/014.mp4", SHARED / "clips/vasp/ID10/017.mp4"]
# The wide shot: four people, faces about 70 px high in 1080p (23 px in a 640-px copy).
WIDE_CLIPS = [SHARED / f"clips/vasp/{c}.mp4" for c in ("ID1/014", "ID2/013", "ID10/017", "ID5/013")]


def build_input(path: Path, seconds: float, wide: bool = False) -> Path:
    """Two VASP faces side by side at 1280×720 (or, `wide`, four small ones at 1920×1080),
    looping, with the left face's voice."""
    if not path.exists():
        from syncasd.data.compose import compose_side_by_side

        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"building {path.name} ({seconds:.0f} s)...", file=sys.stderr)
        if wide:
            compose_side_by_side(
                WIDE_CLIPS,
                path,
                size=(1920, 1080),
                duration=seconds,
                face_height=0.1,
                preset="veryfast",
            )
        else:
            compose_side_by_side(CLIPS, path, duration=seconds, preset="veryfast")
    return path


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(video: str, options: dict) -> dict:
    """Run one detection in this process; report timings and memory."""
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        t0 = time.perf_counter()
        while not stop.wait(1.0):
            samples.append((round(time.perf_counter() - t0, 1), round(_rss_mb(), 1)))

    from syncasd import Detector

    t0 = time.perf_counter()
    detector = Detector(**options)  # the default model, bundled
    setup = time.perf_counter() - t0
    tmp_before = set(os.listdir(tempfile.gettempdir()))
    threading.Thread(target=sample, daemon=True).start()
    t1 = time.perf_counter()
    result = detector(video)
    wall = time.perf_counter() - t1
    stop.set()
    tmp_after = set(os.listdir(tempfile.gettempdir()))
    n = result.n_frames
    stages = {k: v for k, v in result.metadata["timings_s"].items() if k != "total"}
    return {
        "video": Path(video).name,
        "seconds": n / 25,
        "frames": n,
        "face_frames": int(sum(len(t.frames) for t in result.tracks)),
        "tracks": len(result.tracks),
        "zoomed_detections": result.metadata["zoomed_detections"],
        "setup_s": round(setup, 2),
        "wall_s": round(wall, 2),
        "real_time_factor": round(n / 25 / wall, 3),
        "ms_per_frame": {k: round(1000 * v / n, 2) for k, v in stages.items()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_samples_mb": samples[:: max(1, len(samples) // 20)],
        "new_temp_files": sorted(tmp_after - tmp_before),
        "options": options,
    }


def measure(video: Path, options: dict) -> dict:
    cmd = [sys.executable, __file__, "--child", str(video), "--options", json.dumps(options)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(rows: list[dict]) -> str:
    stages = ["audio", "decode", "shots", "faces", "crops", "scores", "sync"]
    lines = [
        f"CPU: {os.cpu_count()} cores, {platform.processor() or platform.machine()}; "
        f"load average before: {os.getloadavg()[0]:.2f}",
        "",
        "| video | s | tracks | zoomed | RTF | "
        + " | ".join(f"{s} ms/f" for s in stages)
        + " | peak RSS MB | options |",
        "|---" * (len(stages) + 7) + "|",
    ]
    for r in rows:
        ms = r["ms_per_frame"]
        lines.append(
            f"| {r['video']} | {r['seconds']:.0f} | {r['tracks']} | {r['zoomed_detections']} | "
            f"{r['real_time_factor']:.2f}× | "
            + " | ".join(f"{ms.get(s, 0):.1f}" for s in stages)
            + f" | {r['peak_rss_mb']:.0f} | {r['options'] or 'defaults'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--long", action="store_true", help="also the 10-minute video")
    parser.add_argument("--only-long", action="store_true", help="only the 10-minute video")
    parser.add_argument("--detect-every", type=int, default=None)
    parser.add_argument("--scoring", default=None, choices=["chunk", "demo"])
    parser.add_argument("--backend", default=None, choices=["auto", "torch", "ort"])
    parser.add_argument("--model", default=None, help="an ASD model other than the default")
    parser.add_argument("--sync", action="store_true", default=None, help="detect --sync")
    parser.add_argument("--align", action="store_true", default=None, help="detect --align")
    parser.add_argument("--zoom-size", type=int, default=None, help="detect --zoom-size")
    parser.add_argument("--wide", action="store_true", help="the 1080p wide shot instead")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(os.environ.get("SYNCASD_CACHE", Path.home() / ".cache/syncasd")) / "bench",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, json.loads(args.options))))
        return
    if not SHARED.exists():
        sys.exit(f"{SHARED} is missing: the benchmark composes its inputs from shared clips")
    options = {
        k: v
        for k, v in {
            "detect_every": args.detect_every,
            "scoring": args.scoring,
            "backend": args.backend,
            "model": args.model,
            "sync": args.sync,
            "align": args.align,
            "zoom_size": args.zoom_size,
        }.items()
        if v is not None
    }
    videos = []
    if args.wide:
        videos.append(build_input(args.workdir / "four_small_faces_1080p_60s.mp4", 60, wide=True))
    elif not args.only_long:
        videos.append(build_input(args.workdir / "two_faces_720p_60s.mp4", 60))
    if args.long or args.only_long:
        videos.append(build_input(args.workdir / "two_faces_720p_600s.mp4", 600))
    rows = []
    for video in videos:
        row = measure(video, options)
        print(json.dumps(row), file=sys.stderr)
        rows.append(row)
    table = report(rows)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (args.out / f"detect-{stamp}.json").write_text(json.dumps(rows, indent=1))
    (args.out / f"detect-{stamp}.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
