"""Dubbed-video detection against each undubbed clip's own offset: are the originals that a
model calls silent the ones whose soundtrack is off at source?

The evaluation suite's material, seed and dubs (`bench/eval_suite.py`). Per undubbed speaking
clip: its TPR under MODEL at 0.5, and its own offset by a sync backend (the row of largest
mean logit over its speaking frames, frames K … T−K−1, as `bench/sync_by_source.py`). Prints
the originals' TPR by |offset| and the dubbed-video AUROC with every original and without
those at |offset| ≥ 3 (120 ms or more: off by more than the ±2 frames the models keep in
sync). An analysis of where a number comes from, not a protocol: the suite's AUROC stays the
published one.

    python bench/dubbing_by_offset.py [--split val] [--model sync-light-asd-gated]
                                      [--sync-model sync-pair]
"""

from __future__ import annotations

import argparse

import numpy as np
from eval_suite import SEED, dubbed_ranking, dubbed_set, material, model_spec

from syncasd.evaluate import dubbing, syncacc
from syncasd.evaluate.report import markdown_table
from syncasd.evaluate.tracks import model_scorer
from syncasd.offsets import offset_backend
from syncasd.syncmap import masked_offset

OFF = 3  # |offset| in frames from which an original counts as off at source


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--model", default="sync-light-asd-gated", metavar="NAME[=CHECKPOINT]")
    parser.add_argument("--sync-model", default="sync-pair")
    args = parser.parse_args()
    tracks = material(3 if args.split == "test" else 10**6, args.split)
    dubbed_tracks, dubbed = dubbed_set(tracks, SEED)
    name, _, path = args.model.partition("=")
    _, scorer = model_scorer(model_spec(name, path or None))
    ranked = dubbed_ranking(scorer, dubbed_tracks)

    # On the training clips' clock (no audio lag), the one on which the ASD models keep ±2
    # frames in sync: the corrected clock would read these offsets a frame later.
    backend = offset_backend(args.sync_model, audio_lag_ms=0)
    originals = [t for t in tracks if t.labels.any() and t.video_id not in dubbed]
    offset = {
        t.video_id: masked_offset(m, valid)
        for t, m, valid in syncacc.track_matrices(backend, originals, 5)
    }
    tpr = {v.video: v.tpr for v in ranked}
    rows = []
    bins = [("≤ 1", lambda o: abs(o) <= 1), ("2", lambda o: abs(o) == 2)]
    bins.append((f"≥ {OFF}", lambda o: abs(o) >= OFF))
    for label, keep in bins:
        chosen = [tpr[v] for v, o in offset.items() if keep(o)]
        low = sum(x < 50 for x in chosen)
        rows.append([label, len(chosen), np.mean(chosen) if chosen else np.nan, low])
    unmeasured = [v.video for v in ranked if v.video not in dubbed and v.video not in offset]
    rows.append(
        [
            "too short to measure",
            len(unmeasured),
            np.mean([tpr[v] for v in unmeasured]) if unmeasured else np.nan,
            sum(tpr[v] < 50 for v in unmeasured),
        ]
    )
    headers = ["original's |offset| (frames)", "clips", "mean TPR (%)", "TPR < 50 %"]
    print(f"{args.model} on the {args.split} dubbing material; offsets by {args.sync_model}")
    print(markdown_table(headers, rows))
    off = {v for v, o in offset.items() if abs(o) >= OFF}
    kept = [v for v in ranked if v.video not in off]
    all_auroc = dubbing.separation(ranked, dubbed)["auroc"]
    kept_auroc = dubbing.separation(kept, dubbed)["auroc"]
    print(
        f"\ndubbed-video AUROC: {all_auroc:.1f} with every original, {kept_auroc:.1f} without "
        f"the {len(off)} whose own offset is {OFF} frames or more"
    )
    print("off at source: " + ", ".join(f"{v} {offset[v]:+d} (TPR {tpr[v]:.0f})" for v in off))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
