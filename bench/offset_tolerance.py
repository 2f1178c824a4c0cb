"""How far off a soundtrack may be before a model stops calling the face speaking: the share of
speech called speaking at `detect`'s threshold of 0.5 when every track's whole audio is moved
k frames later (k > 0: the voice after the lips) or earlier.

The seeds and issue 8 define speaking as in sync: a voice more than 125 ms (3 frames) off is
not the face speaking, one or two frames off still is (real videos are often that far off).
This bench measures where a model puts that line. Material: the evaluation suite's speaking
tracks (`eval_suite.material`; `--sources` keeps some folders, e.g. the footage known to be in
sync, GRID, LRS2 and VoxCeleb2 on test). A frame counts where it is labelled speaking and the
audio moved onto it is labelled speaking too, so that both ends of a turn stay out of it.
Offsets are the material's own: the VASP clips lie about one frame late (docs/sync.md, the training
clips' clock), so their k = −1 is nearer true sync.

    python bench/offset_tolerance.py [--split test] [--sources grid,lrs2,voxceleb2]
                                     [--shifts -6:6] [MODEL ...]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
from eval_suite import material, model_spec

from syncasd.evaluate.report import markdown_table
from syncasd.evaluate.tracks import model_scorer, score_tracks
from syncasd.offsets import shifted
from syncasd.timebase import SAMPLES_PER_FRAME


def parse_shifts(text: str) -> list[int]:
    lo, hi = (int(x) for x in text.split(":"))
    return list(range(lo, hi + 1))


def moved(track, k: int):
    """The track with its whole audio moved k frames later (k < 0: earlier)."""
    return replace(track, audio=shifted(track.audio, k * SAMPLES_PER_FRAME))


def speaking_share(scorer, tracks: list, k: int) -> float:
    """% of speech called speaking at 0.5 in `tracks`, whose audio was moved by k: frames
    labelled speaking both where they are and where the move put their audio."""
    scores = np.concatenate(score_tracks(scorer, tracks))
    speech = np.concatenate([t.labels & shifted(t.labels, k) for t in tracks])
    return 100 * float(np.mean(scores[speech] >= 0.5))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=["sync-light-asd-talknet-gated"])
    parser.add_argument("--split", choices=("val", "test"), default="test")
    parser.add_argument("--sources", default=None, help="only these clip folders, by comma")
    parser.add_argument("--shifts", default="-6:6", help="A:B, frames")
    args = parser.parse_args()
    tracks = material(3 if args.split == "test" else 10**6, args.split)
    tracks = [t for t in tracks if t.labels.any() and not t.video_id.startswith("liveportrait")]
    if args.sources:
        keep = tuple(args.sources.split(","))
        tracks = [t for t in tracks if t.video_id.startswith(keep)]
    if not tracks:
        raise SystemExit("no speaking track in that material")
    shifts = parse_shifts(args.shifts)
    print(f"{len(tracks)} tracks, {sum(int(t.labels.sum()) for t in tracks)} speaking frames")
    rows = []
    for name in args.models:
        _, scorer = model_scorer(model_spec(name))
        row = [name]
        for k in shifts:
            row.append(speaking_share(scorer, [moved(t, k) for t in tracks], k))
        rows.append(row)
        print(markdown_table(["model", *(f"{k:+d}" for k in shifts)], [row]), flush=True)
    print()
    print(markdown_table(["model", *(f"{k:+d}" for k in shifts)], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
