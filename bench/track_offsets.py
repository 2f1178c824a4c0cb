"""Each corpus track's own audio-visual offset by two sync models trained apart, and the
realignment file of `samples.track_offsets` that their agreement gives.

Interview footage is often a few frames off at source, and a sync-net trained to call such a
track in sync at offset 0 learns a blurred peak. Two backends of different architecture and
input (by default `light-syncnet`: Light-ASD's encoders on the lower half of the crop and MFCC;
`ic-syncnet`: five 48×96 mouths and a log-mel window, trained from scratch) each give a track
its whole-track offset (`train_sync.track_offsets`, ±K frames, on the training clips' own
clock: no audio lag). The rule, fixed before any model was trained with it:

- the two agree (|a − b| ≤ 1): the track's offset is their mean rounded towards zero; a track
  at ±2 frames or more is realigned by it, one within ±1 is left as it is (the protocol's
  tolerance);
- they disagree and either is 2 or more frames off: the track is dropped (null);
- otherwise, or with no estimate (too short, never speaking), the track is left as it is.

    python bench/track_offsets.py [--split train] [-o runs/track_offsets.json]

Prints the offsets' distribution per source and what the rule does with them.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter, defaultdict
from pathlib import Path

from sync_by_source import source

from syncasd.atomic import atomic_write
from syncasd.evaluate import syncacc
from syncasd.evaluate.report import markdown_table
from syncasd.offsets import offset_backend
from syncasd.train_sync import track_offsets

MAX_OFFSET = 6  # frames searched either way


def consensus(a: int | None, b: int | None) -> int | None:
    """The realignment of one track from two offsets (module docstring): 0 leaves it as it
    is, None drops it."""
    if a is None or b is None:
        return 0
    if abs(a - b) <= 1:
        mean = (a + b) / 2
        offset = int(math.copysign(math.floor(abs(mean)), mean))
        return offset if abs(offset) >= 2 else 0
    return None if max(abs(a), abs(b)) >= 2 else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="train")
    parser.add_argument("--models", default="light-syncnet,ic-syncnet", help="two, by comma")
    parser.add_argument("-o", "--output", default="runs/track_offsets.json")
    args = parser.parse_args()
    names = args.models.split(",")
    if len(names) != 2:
        parser.error("--models takes two names")
    corpus = syncacc.find_corpus(None)
    ids = corpus.split(args.split)
    found = []
    for name in names:
        backend = offset_backend(name, max_offset=MAX_OFFSET, audio_lag_ms=0)
        found.append(track_offsets(backend, corpus, ids, progress=True))
    table: dict[str, int | None] = {}
    tally: dict[str, Counter] = defaultdict(Counter)
    for i in ids:
        a, b = (f.get(i) for f in found)
        if a is None and b is None:
            continue
        verdict = consensus(a, b)
        video = corpus.tracks[i].video_id
        group = tally[source(video)]
        group["tracks"] += 1
        group["agree"] += a is not None and b is not None and abs(a - b) <= 1
        group["realigned"] += bool(verdict)
        group["dropped"] += verdict is None
        if verdict != 0:
            table[video] = verdict
    headers = ["source", "tracks", f"{names[0]} and {names[1]} within ±1", "realigned", "dropped"]
    rows = [[s, g["tracks"], g["agree"], g["realigned"], g["dropped"]] for s, g in tally.items()]
    print(markdown_table(headers, sorted(rows)))
    shifts = Counter(v for v in table.values() if v is not None)
    print("realignments (frames: tracks):", dict(sorted(shifts.items())))
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as f:
        f.write(json.dumps(dict(sorted(table.items())), indent=0) + "\n")
    print(f"wrote {out} ({len(table)} tracks listed)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
