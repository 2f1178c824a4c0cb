"""Sync accuracy on the tracks another model finds in sync: how much of the gap to the targets
is the material's own offset?

The protocol (`syncasd eval sync-accuracy`) scores every clip against offset 0, but
re-encoded interviews are often a few frames off. Here a *referee*, a backend trained apart
(default `ic-syncnet`), gives each track its whole-track offset (the row with the largest mean
logit over its valid frames, as `sync_by_source.py`). The scored backend's accuracy is then
reported on all tracks and on the tracks the referee places within ±1 frame, and the same
with the roles swapped. Two independent models agreeing is evidence, not ground truth: the
restricted numbers are a diagnostic beside the protocol's, never instead of them.

It also asks whether the tracks' own offsets belong to the material or to the model: where the
scored model puts a track 2 frames or more off, how often the referee finds the same offset
(±1), against chance (the referee's offsets shuffled among the tracks); and it scores the
clips against each track's whole-track offset (the referee's, then the model's own) instead
of 0.

    python bench/sync_referee.py [--model sync-pair] [--referee ic-syncnet] [--split test]
                                 [--weights PATH --audio-lag-ms MS]

Writes bench/results/sync_referee_<model>_<referee>_<split>.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sync_by_source import add_backend_options

from syncasd.evaluate import syncacc
from syncasd.evaluate.report import markdown_table
from syncasd.offsets import offset_backend
from syncasd.syncmap import masked_offset

ROOT = Path(__file__).resolve().parents[1]
LENGTHS = (5, 11, 15)


def scored(
    name: str, tracks: list, weights: str | None = None, audio_lag_ms: float | None = None
) -> tuple[object, list]:
    """A backend and its (video id, matrix, valid frames) per track with a clip."""
    backend = offset_backend(name, weights, audio_lag_ms=audio_lag_ms)
    rows = [
        (track.video_id, matrix, valid)
        for track, matrix, valid in syncacc.track_matrices(backend, tracks, min(LENGTHS), True)
    ]
    return backend, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_backend_options(parser)  # the scored model's
    parser.add_argument("--referee", default="ic-syncnet")
    parser.add_argument("--split", choices=("test", "val"), default="test")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    tracks = syncacc.corpus_tracks(syncacc.find_corpus(None), args.split)
    results = {
        args.model: scored(args.model, tracks, args.weights, args.audio_lag_ms),
        args.referee: scored(args.referee, tracks),
    }
    ids = {name: [r[0] for r in rows] for name, (_, rows) in results.items()}
    if ids[args.model] != ids[args.referee]:
        raise SystemExit("the two backends scored different tracks")

    # Each track's whole-track offset by each model, computed once.
    offsets = {
        name: np.array([masked_offset(m, v) for _, m, v in rows])
        for name, (backend, rows) in results.items()
    }
    table, report = [], {}
    for name, judge in ((args.model, args.referee), (args.referee, args.model)):
        backend, rows = results[name]
        window = syncacc.backend_window(backend)
        near = np.abs(offsets[judge]) <= syncacc.TOLERANCE
        for label, keep in (("all tracks", np.ones(len(rows), bool)), (f"{judge} ±1", near)):
            kept = [(m, v) for (_, m, v), k in zip(rows, keep, strict=True) if k]
            result = syncacc.sync_accuracy(*zip(*kept, strict=True), LENGTHS, window=window)
            acc = [round(result.accuracy[n], 1) for n in LENGTHS]
            table.append([name, label, int(keep.sum()), result.clips[LENGTHS[0]], *acc])
            report[f"{name} on {label}"] = {"tracks": int(keep.sum()), "accuracy": acc}
    headers = ["scored", "tracks kept", "tracks", "clips (5)", *(f"acc. {n} (%)" for n in LENGTHS)]
    print(markdown_table(headers, table))
    agree = (np.abs(offsets[args.model]) <= 1) & (np.abs(offsets[args.referee]) <= 1)
    print(f"both place within ±1: {int(agree.sum())} of {len(agree)} tracks")

    # Are the tracks' own offsets the material's or the model's? Where the scored model puts a
    # track 2 frames or more from 0, how often does the referee put it within ±1 of the same
    # offset, against chance (the referee's offsets shuffled among the tracks)?
    mine, theirs = offsets[args.model], offsets[args.referee]
    rng = np.random.default_rng(0)
    shuffled = [rng.permutation(theirs) for _ in range(2000)]
    rows = []
    for label, keep in (("≤ 1", np.abs(mine) <= 1), ("≥ 2", np.abs(mine) >= 2)):
        same = np.abs(mine[keep] - theirs[keep]) <= 1
        chance = np.mean([np.mean(np.abs(mine[keep] - x[keep]) <= 1) for x in shuffled])
        rows.append([label, int(keep.sum()), 100 * same.mean(), 100 * chance])
        report[f"referee agrees where {args.model} |offset| {label}"] = {
            "tracks": int(keep.sum()),
            "agree_pct": round(100 * same.mean(), 1),
            "chance_pct": round(100 * chance, 1),
        }
    headers = [
        f"{args.model}'s track offset",
        "tracks",
        "referee within ±1 of it (%)",
        "chance (%)",
    ]
    print(markdown_table(headers, rows))

    # The protocol with each track's own offset as the truth: the scored model's clips against
    # the referee's whole-track offset, and against its own (how steady its clips are).
    backend, scored_rows = results[args.model]
    window = syncacc.backend_window(backend)
    matrices = [(m, v) for _, m, v in scored_rows]
    rows = []
    for label, truths in ((f"{args.referee}'s", theirs), ("its own", mine)):
        result = syncacc.sync_accuracy(
            *zip(*matrices, strict=True), LENGTHS, window=window, truths=truths.tolist()
        )
        acc = [round(result.accuracy[n], 1) for n in LENGTHS]
        rows.append([label, *acc])
        report[f"{args.model} against the track offset, {label}"] = {"accuracy": acc}
    headers = ["each track's truth: its offset by", *(f"acc. {n} (%)" for n in LENGTHS)]
    print(markdown_table(headers, rows))
    args.out.mkdir(parents=True, exist_ok=True)
    scored_name = args.model + (f"-{Path(args.weights).parent.name}" if args.weights else "")
    path = args.out / f"sync_referee_{scored_name}_{args.referee}_{args.split}.json"
    path.write_text(json.dumps(report, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
