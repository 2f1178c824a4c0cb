"""Sync accuracy on the tracks another model finds in sync: how much of the gap to the targets
is the material's own offset?

The protocol (`syncasd eval sync-accuracy`) scores every clip against offset 0, but
re-encoded interviews are often a few frames off. Here a *referee*, a backend trained apart
(default `ic-syncnet`), gives each track its whole-track offset (the row with the largest mean
logit over its valid frames, as `sync_by_source.py`). The scored backend's accuracy is then
reported on all tracks and on the tracks the referee places within ±1 frame, and the same
with the roles swapped. Two independent models agreeing is evidence, not ground truth: the
restricted numbers are a diagnostic beside the protocol's, never instead of them.

    python bench/sync_referee.py [--model sync-pair] [--referee ic-syncnet] [--split test]

Writes bench/results/sync_referee_<model>_<referee>_<split>.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sync_by_source import track_offset

from syncasd.defaults import DEFAULT_SYNC_MODEL
from syncasd.evaluate import syncacc
from syncasd.evaluate.report import markdown_table
from syncasd.offsets import offset_backend

ROOT = Path(__file__).resolve().parents[1]
LENGTHS = (5, 11, 15)


def scored(name: str, tracks: list) -> tuple[object, list]:
    """A backend and its (video id, matrix, valid frames) per track with a clip."""
    backend = offset_backend(name)
    rows = [
        (track.video_id, matrix, valid)
        for track, matrix, valid in syncacc.track_matrices(backend, tracks, min(LENGTHS), True)
    ]
    return backend, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_SYNC_MODEL)
    parser.add_argument("--referee", default="ic-syncnet")
    parser.add_argument("--split", choices=("test", "val"), default="test")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    tracks = syncacc.corpus_tracks(syncacc.find_corpus(None), args.split)
    results = {name: scored(name, tracks) for name in (args.model, args.referee)}
    ids = {name: [r[0] for r in rows] for name, (_, rows) in results.items()}
    if ids[args.model] != ids[args.referee]:
        raise SystemExit("the two backends scored different tracks")

    def offsets(name: str) -> np.ndarray:
        backend, rows = results[name]
        return np.array([track_offset(m, v, backend.max_offset) for _, m, v in rows])

    table, report = [], {}
    for name, judge in ((args.model, args.referee), (args.referee, args.model)):
        backend, rows = results[name]
        window = syncacc.backend_window(backend)
        near = np.abs(offsets(judge)) <= syncacc.TOLERANCE
        for label, keep in (("all tracks", np.ones(len(rows), bool)), (f"{judge} ±1", near)):
            kept = [(m, v) for (_, m, v), k in zip(rows, keep, strict=True) if k]
            result = syncacc.sync_accuracy(*zip(*kept, strict=True), LENGTHS, window=window)
            acc = [round(result.accuracy[n], 1) for n in LENGTHS]
            table.append([name, label, int(keep.sum()), result.clips[LENGTHS[0]], *acc])
            report[f"{name} on {label}"] = {"tracks": int(keep.sum()), "accuracy": acc}
    headers = ["scored", "tracks kept", "tracks", "clips (5)", *(f"acc. {n} (%)" for n in LENGTHS)]
    print(markdown_table(headers, table))
    agree = (np.abs(offsets(args.model)) <= 1) & (np.abs(offsets(args.referee)) <= 1)
    print(f"both place within ±1: {int(agree.sum())} of {len(agree)} tracks")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"sync_referee_{args.model}_{args.referee}_{args.split}.json"
    path.write_text(json.dumps(report, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
