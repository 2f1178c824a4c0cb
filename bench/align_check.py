"""What `detect --align` buys and what it costs, on the evaluation suite's single-face tracks.

Each track stands for a one-face video, and `--align`'s decision is the pipeline's: the sync
backend's matrix of the track (`sync-pair`, ±15 frames), its analysis over the Silero VAD speech
(`syncmap.analyze_track`), `syncmap.video_offset` on it, the audio moved where that is 2 frames
or more (`pipeline.ALIGN_MIN_FRAMES`), then scored by the model as `detect` scores.
(`--sync-model` picks another backend, as `detect --sync-model` does.)

- Bought: the share of speech called speaking (threshold 0.5) when the whole soundtrack of
  footage known to be in sync (GRID, LRS2, VoxCeleb2) is moved k frames, without and with the
  alignment, as `bench/offset_tolerance.py` counts it (frames labelled speaking before and
  after the move), and how often the measured offset is k ± 1.
- Cost: the evaluation suite's dubbing test (a seeded third of the speaking tracks given
  another clip's voice, labels kept): how many dubbed and how many original tracks would be
  moved, and the dubbed-video AUROC (low TPR finds the dubbed clips) without and with it.
  A dubbed track moved to a chance offset and then called speaking is what keeps --align
  opt-in.

    python bench/align_check.py [--split test|val] [--shifts -6:6] [--seed 0]
                                [--sync-model light-syncnet]   # detect --sync-model
                                [--vote-prob 0.3]   # who may vote
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from eval_suite import SEED, dubbed_ranking, dubbed_set, material, model_spec
from offset_tolerance import moved, parse_shifts, speaking_share

from syncasd.audio import speech_frames
from syncasd.defaults import DEFAULT_MODEL, DEFAULT_SYNC_MODEL
from syncasd.evaluate import dubbing
from syncasd.evaluate.report import markdown_table
from syncasd.evaluate.tracks import model_scorer
from syncasd.offsets import offset_backend
from syncasd.pipeline import ALIGN_MIN_FRAMES
from syncasd.syncmap import VOTE_MIN_PROB, analyze_track, video_offset

IN_SYNC_SOURCES = ("grid", "lrs2", "voxceleb2")


def measured_offset(backend, track, min_prob: float = VOTE_MIN_PROB) -> int:
    """The offset `detect --align` finds for a one-face video holding this track."""
    speech = speech_frames(track.audio)[: len(track)]
    sync = analyze_track(backend(track.crops, track.audio), speech=speech)
    return video_offset([sync], [int(speech.sum())], min_prob)[0]


def aligned(track, offset: int):
    """The track as `--align` scores it: its audio moved back by the offset, from 2 frames."""
    return moved(track, -offset) if abs(offset) >= ALIGN_MIN_FRAMES else track


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("val", "test"), default="test")
    parser.add_argument("--shifts", default="-6:6", help="A:B, frames")
    parser.add_argument("--seed", type=int, default=SEED, help="the dubbing test's draw")
    parser.add_argument("--sync-model", default=DEFAULT_SYNC_MODEL, help="the sync backend")
    parser.add_argument(
        "--vote-prob", type=float, default=VOTE_MIN_PROB, help="who may vote (video_offset)"
    )
    args = parser.parse_args()
    tracks = material(3 if args.split == "test" else 10**6, args.split)
    backend = offset_backend(args.sync_model)
    _, scorer = model_scorer(model_spec(DEFAULT_MODEL))
    started = time.perf_counter()

    in_sync = [t for t in tracks if t.labels.any() and t.video_id.startswith(IN_SYNC_SOURCES)]
    if in_sync:
        shifts = parse_shifts(args.shifts)
        print(f"{len(in_sync)} in-sync tracks, {sum(map(len, in_sync))} frames", flush=True)
        plain, moved_back, found = ["without"], ["--align"], ["offset k ± 1"]
        for k in shifts:
            late = [moved(t, k) for t in in_sync]
            offsets = [measured_offset(backend, t, args.vote_prob) for t in late]
            plain.append(speaking_share(scorer, late, k))
            back = [aligned(t, o) for t, o in zip(late, offsets, strict=True)]
            moved_back.append(speaking_share(scorer, back, k))
            found.append(100 * float(np.mean([abs(o - k) <= 1 for o in offsets])))
            print(f"k {k:+d}: {plain[-1]:.1f} → {moved_back[-1]:.1f} %", flush=True)
        head = ["speech called speaking, %", *(f"{k:+d}" for k in shifts)]
        print(markdown_table(head, [plain, moved_back, found]), flush=True)

    dubbed_tracks, dubbed = dubbed_set(tracks, args.seed)
    offsets = {t.video_id: measured_offset(backend, t, args.vote_prob) for t in dubbed_tracks}
    moved_ids = {v for v, o in offsets.items() if abs(o) >= ALIGN_MIN_FRAMES}
    speaking = {t.video_id for t in dubbed_tracks if t.labels.any()}
    rows = []
    for name, ranked_tracks in (
        ("without", dubbed_tracks),
        ("--align", [aligned(t, offsets[t.video_id]) for t in dubbed_tracks]),
    ):
        sep = dubbing.separation(dubbed_ranking(scorer, ranked_tracks), dubbed)
        rows.append([name, sep["auroc"], sep["precision_at_k"]])
    originals = speaking - dubbed
    print(f"\n{args.split}: {len(dubbed)} dubbed tracks, {len(originals)} original speaking ones")
    for name, group in (("dubbed", dubbed), ("original", originals)):
        share = 100 * len(moved_ids & group) / len(group)
        listed = ", ".join(f"{v} {offsets[v]:+d}" for v in sorted(moved_ids & group))
        print(f"--align moves {len(moved_ids & group)} {name} ({share:.1f} %): {listed}")
    print(markdown_table(["dubbing test", "AUROC", "dubbed among the lowest k, %"], rows))
    print(f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
