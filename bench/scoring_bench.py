"""Default `chunk` scoring against the peers' 6-pass `demo` scoring, on real VASP clips.

For each clip: the speaking probabilities and decisions of both, and the scoring time per
face-frame. The face tracks are the same in both runs (same detector and tracker), so only the
scoring differs.

    python bench/scoring_bench.py --clips 20
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
WEIGHTS = SHARED / "weights" / "light_asd_ava.model"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20, help="one clip per identity, in order")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    import syncasd

    clips = [sorted(d.glob("*.mp4"))[0] for d in sorted((SHARED / "clips/vasp").iterdir())]
    clips = clips[: args.clips]
    runs = {
        s: syncasd.Detector(model="light-asd", weights=str(WEIGHTS), scoring=s)
        for s in ("chunk", "demo")
    }
    rows = []
    for clip in clips:
        results, seconds = {}, {}
        for name, detector in runs.items():
            results[name] = detector(clip)
            seconds[name] = results[name].metadata["timings_s"]["scores"]
        a, b = results["chunk"], results["demo"]
        if len(a.tracks) != len(b.tracks) or not a.tracks:
            continue
        pa = np.concatenate([t.probs for t in a.tracks])
        pb = np.concatenate([t.probs for t in b.tracks])
        rows.append(
            {
                "clip": str(clip.relative_to(SHARED)),
                "face_frames": int(pa.size),
                "mean_abs_prob_diff": float(np.abs(pa - pb).mean()),
                "decision_agreement": float(((pa >= 0.5) == (pb >= 0.5)).mean()),
                "speaking_chunk": float((pa >= 0.5).mean()),
                "speaking_demo": float((pb >= 0.5).mean()),
                "ms_per_face_frame_chunk": 1000 * seconds["chunk"] / pa.size,
                "ms_per_face_frame_demo": 1000 * seconds["demo"] / pa.size,
            }
        )
    frames = np.array([r["face_frames"] for r in rows])

    def weighted(key: str) -> float:
        return float(np.average([r[key] for r in rows], weights=frames))

    summary = {
        "clips": len(rows),
        "face_frames": int(frames.sum()),
        **{
            k: round(weighted(k), 4)
            for k in (
                "mean_abs_prob_diff",
                "decision_agreement",
                "speaking_chunk",
                "speaking_demo",
                "ms_per_face_frame_chunk",
                "ms_per_face_frame_demo",
            )
        },
    }
    print(json.dumps(summary, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (args.out / f"scoring-{stamp}.json").write_text(
        json.dumps({"summary": summary, "clips": rows}, indent=1)
    )


if __name__ == "__main__":
    main()
