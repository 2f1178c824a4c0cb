"""Sync accuracy (`syncasd eval sync-accuracy test`) per test source, with each track's offset.

The same tracks, clips and matrices as the command (`syncacc.track_matrices`), grouped by the
folder a clip came from. A track's offset is the row with the largest mean logit over its
valid (speaking) frames; the "By source" table of docs/sync.md is this script's output.

    python bench/sync_by_source.py [--model sync-light-asd] [--weights PATH] [--split test]
    python bench/sync_by_source.py --audio-lag-ms 0   # as before the 40 ms clock correction
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict

import numpy as np

from syncasd.defaults import DEFAULT_SYNC_MODEL
from syncasd.evaluate import syncacc
from syncasd.evaluate.report import markdown_table
from syncasd.offsets import offset_backend
from syncasd.syncmap import masked_offset

LENGTHS = (5, 15)


def source(video_id: str) -> str:
    folder = video_id.split("/")[0]
    return "VASP" if folder.startswith("ID") else folder


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """--model, --weights and --audio-lag-ms: the sync backend a sync bench scores."""
    parser.add_argument("--model", default=DEFAULT_SYNC_MODEL)
    parser.add_argument("--weights", help="a checkpoint of the model (default: the registry's)")
    parser.add_argument(
        "--audio-lag-ms",
        type=float,
        default=None,
        help="the weights' clock (offsets.offset_backend); default: the registry's",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_backend_options(parser)
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    backend = offset_backend(args.model, args.weights, audio_lag_ms=args.audio_lag_ms)
    window = syncacc.backend_window(backend)  # 5 for IC-SyncNet's five-image columns
    tracks = syncacc.corpus_tracks(syncacc.find_corpus(None), args.split)
    groups = defaultdict(list)
    for track, matrix, valid in syncacc.track_matrices(backend, tracks, min(LENGTHS), True):
        groups[source(track.video_id)].append((matrix, valid))
    rows = []
    everything = [item for items in groups.values() for item in items]
    for name, items in [*sorted(groups.items()), ("all", everything)]:
        matrices, valids = zip(*items, strict=True)
        acc = syncacc.sync_accuracy(matrices, valids, LENGTHS, window=window).accuracy
        offsets = [masked_offset(m, v) for m, v in items]
        common = ", ".join(f"{o:+d} ({c})" for o, c in Counter(offsets).most_common(4))
        within = 100 * np.mean(np.abs(offsets) <= syncacc.TOLERANCE)
        rows.append([name, len(items), acc[5], acc[15], within, common])
    headers = ["source", "tracks", "acc. 5 (%)", "acc. 15 (%)", "offset within ±1 (%)", "offsets"]
    print(markdown_table(headers, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
