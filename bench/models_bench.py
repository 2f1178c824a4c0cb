"""Speed of every registered ASD model, torch against ONNX Runtime, on this machine's CPU.

For each model and backend: milliseconds per face-frame of the model alone (a 6 s window of
150 frames, the default scoring window; median of repeats), and the real-time factor of the
whole `detect` pipeline on the two-face 720p benchmark video (see detect_bench.py).

Models with public weights in ../shared/data use them; the others run with their random
initial weights, which cost the same time.

    python bench/models_bench.py [--seconds 20] [--models light-asd lr-asd]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SHARED_WEIGHTS = {
    "light-asd": SHARED / "weights" / "light_asd_ava.model",
    "lr-asd": SHARED / "weights" / "lr_asd_ava.model",
}


def weights_for(name: str, folder: Path) -> Path:
    """The shared checkpoint, or the architecture's initial weights saved to `folder`."""
    if name in SHARED_WEIGHTS and SHARED_WEIGHTS[name].exists():
        return SHARED_WEIGHTS[name]
    from syncasd.models.zoo import get_spec

    torch.manual_seed(0)
    path = folder / f"{name}-init.model"
    torch.save(get_spec(name).builder().state_dict(), path)
    return path


def model_ms_per_frame(model, frames: int = 150, repeats: int = 3) -> float:
    from syncasd.scoring import run_model

    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (frames, 112, 112), dtype=np.uint8)
    mfcc = rng.normal(size=(4 * frames, 13))
    run_model(model, crops, mfcc)  # warm-up: allocations, ORT graph setup
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run_model(model, crops, mfcc)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times) / frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument("--seconds", type=float, default=20.0, help="pipeline run length")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    import syncasd
    from syncasd.models import available_models, load_model
    from syncasd.models.onnx import to_ort

    sys.path.insert(0, str(ROOT / "bench"))
    from detect_bench import build_input

    cache = Path.home() / ".cache" / "syncasd" / "bench"
    video = build_input(cache / "two_faces_720p_60s.mp4", 60)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models or available_models():
            weights = weights_for(name, Path(tmp))
            torch_model = load_model(name, weights=weights)
            ort_model = to_ort(torch_model, name, Path(tmp))
            row = {"model": name, "weights": weights.name}
            row["torch_ms_per_face_frame"] = round(model_ms_per_frame(torch_model), 2)
            row["ort_ms_per_face_frame"] = round(model_ms_per_frame(ort_model), 2)
            for backend in ("torch", "ort"):
                detector = syncasd.Detector(
                    model=name, weights=str(weights), backend=backend, duration=args.seconds
                )
                result = detector(video)
                row[f"{backend}_rtf"] = result.metadata["real_time_factor"]
            print(json.dumps(row), flush=True)
            rows.append(row)
    lines = [
        "| model | weights | torch ms/face-frame | ORT ms/face-frame | speed-up | "
        "torch RTF | ORT RTF |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        speedup = r["torch_ms_per_face_frame"] / r["ort_ms_per_face_frame"]
        lines.append(
            f"| {r['model']} | {r['weights']} | {r['torch_ms_per_face_frame']:.1f} | "
            f"{r['ort_ms_per_face_frame']:.1f} | {speedup:.1f}× | {r['torch_rtf']:.2f}× | "
            f"{r['ort_rtf']:.2f}× |"
        )
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (args.out / f"models-{stamp}.json").write_text(json.dumps(rows, indent=1))
    (args.out / f"models-{stamp}.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
