"""Offset sweep: does a sync backend find a known audio shift, and refuse another clip's voice?

On the corpus's test-identity tracks that speak (`--split val`: validation ones; the first N
of at least 100 frames, corpus order), the track's own int16 audio is really shifted by s
frames for every s of `--shifts`:
s > 0 delays it (s·640 zero samples in front, as many dropped at the end), s < 0 advances it
(start dropped, zeros appended). `syncmap`'s convention is that audio delayed by s frames peaks
at offset +s, so the truth is +s. The backend searches ±(max |s| + 5) frames, and
`syncmap.analyze_track` gives the offset and the `in_sync` verdict, as `syncasd sync` does.

Reported:
- found: share of (track, shift) whose offset is within ±1 frame of s;
- found relative: the same against s + the offset found at shift 0, the clip's own offset
  (re-encoded interviews can be a few frames off; a backend that tracks the shift but
  places the clip itself at +3 fails `found` on every shift and passes this);
- in sync: share called `in_sync` per shift (wanted: yes at |s| <= 1, no beyond);
- another voice: each track under the audio of the next chosen track of another identity
  (cut or zero-padded to length); share called not in sync (wanted: all).
`--method rows` (the default) computes one matrix per track with a search range wider by
max |s| and reads each shift's matrix off its rows: offset k under audio shifted by s frames is
the original audio at offset k - s. Unlike a zero-filled waveform shift, no audio is lost
at the track's ends (as with a longer recording that is out of sync), so the two methods
differ near the ends: on 2 tracks × 3 shifts, 5 of 6 offsets were equal, one was 1 frame
apart. `--method waveform` shifts the waveform itself (zero-filled) and runs the backend once
per shift, about 20x slower.
`in_sync` is given twice: as `syncasd sync` decides (off-screen ratio over the frames Silero VAD
finds speech in; VAD runs once per track and its mask moves with the audio) and with the corpus
labels as the speech mask (shifted with the audio).

    python bench/sync_sweep.py [--model sync-pair] [--tracks 40] [--shifts -15:15:1] [--split val]
    python bench/sync_sweep.py --sources grid,lrs2,voxceleb2 --min-frames 60  # known in sync

Writes bench/results/sync_sweep_<model>.json (`_val` before .json for the validation tracks).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sync_by_source import add_backend_options, source

from syncasd.offsets import shifted
from syncasd.timebase import SAMPLE_RATE, SAMPLES_PER_FRAME

ROOT = Path(__file__).resolve().parents[1]
MARGIN = 5  # frames of search range beyond the largest shift


def parse_shifts(text: str) -> list[int]:
    """ "A:B:STEP" (both ends included when on the step) or a comma list: "-15:15:5", "0,3"."""
    if ":" in text:
        parts = [int(v) for v in text.split(":")]
        start, stop, step = parts if len(parts) == 3 else [*parts, 1]
        return list(range(start, stop + 1, step))
    return [int(v) for v in text.split(",") if v.strip()]


def shift_audio(audio: np.ndarray, frames: int) -> np.ndarray:
    """The audio `frames` frames later (> 0) or earlier (< 0), zero-filled, same length."""
    return shifted(audio, frames * SAMPLES_PER_FRAME)


def shift_labels(labels: np.ndarray, frames: int) -> np.ndarray:
    """Speech labels moved with the audio, False where zeros came in."""
    return shifted(np.asarray(labels, bool), frames)


def fit(x: np.ndarray, n: int) -> np.ndarray:
    """`x` cut or zero-padded to n values."""
    out = np.zeros(n, x.dtype)
    out[: min(n, len(x))] = x[:n]
    return out


def pick_tracks(
    corpus, count: int, min_frames: int, split: str = "test", sources: set[str] | None = None
) -> list[int]:
    """The first `count` tracks of `split` that speak and last at least `min_frames` frames
    (from the clip folders `sources` only, if given)."""
    chosen = []
    for i in corpus.split(split):
        t = corpus.tracks[i]
        if t.negative or t.length < min_frames or not corpus.labels[t.frames].any():
            continue
        if sources is not None and source(t.video_id).lower() not in sources:
            continue
        chosen.append(i)
        if len(chosen) == count:
            break
    return chosen


def partner(corpus, chosen: list[int], j: int) -> int:
    """The next chosen track (cyclically) of another identity, one at least as long if any."""
    me = corpus.tracks[chosen[j]]
    order = [chosen[(j + d) % len(chosen)] for d in range(1, len(chosen))]
    others = [i for i in order if corpus.tracks[i].identity != me.identity] or order
    long_enough = [i for i in others if corpus.tracks[i].length >= me.length]
    return (long_enough or others)[0]


def pct(flags: list[bool]) -> float | None:
    return round(100.0 * sum(flags) / len(flags), 2) if flags else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_backend_options(parser)
    parser.add_argument("--tracks", type=int, default=40, help="tracks, corpus order")
    parser.add_argument(
        "--split",
        choices=("test", "val"),
        default="test",
        help="identities: test (published numbers) or val (choosing between candidates)",
    )
    parser.add_argument("--shifts", default="-15:15:1", help='"A:B:STEP" or a comma list')
    parser.add_argument("--min-frames", type=int, default=100)
    parser.add_argument(
        "--sources",
        default=None,
        help="only tracks of these clip folders, e.g. grid,lrs2,voxceleb2 (footage known to be "
        "in sync, where a shift's truth is the shift itself)",
    )
    parser.add_argument("--corpus", type=Path, default=None, help="default: sync-light-asd's")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--method", choices=("rows", "waveform"), default="rows")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    from syncasd.audio import speech_frames, track_speech
    from syncasd.evaluate.syncacc import find_corpus
    from syncasd.offsets import offset_backend
    from syncasd.syncmap import analyze_track

    shifts = parse_shifts(args.shifts)
    timings = dict.fromkeys(("model", "shift", "matrix", "analyze"), 0.0)
    clock = time.perf_counter()
    corpus = find_corpus(args.corpus)
    sources = set(args.sources.lower().split(",")) if args.sources else None
    chosen = pick_tracks(corpus, args.tracks, args.min_frames, args.split, sources)
    if len(chosen) < 2:
        raise SystemExit("need at least two tracks for the another-voice test")
    max_offset = max(abs(s) for s in shifts) + MARGIN
    reach = max_offset + (max(abs(s) for s in shifts) if args.method == "rows" else 0)
    backend = offset_backend(
        args.model, args.weights, reach, args.device, audio_lag_ms=args.audio_lag_ms
    )
    timings["model"] = time.perf_counter() - clock

    def voiced(audio: np.ndarray, n: int) -> np.ndarray:
        """Silero VAD's speech mask of `audio` over n frames, as `syncasd sync` takes it."""
        t0 = time.perf_counter()
        mask = track_speech(speech_frames(audio), 0, n)
        timings["analyze"] += time.perf_counter() - t0
        return mask

    def analyse(crops, audio, heard, speech, wide=None, shift=0) -> dict:
        """Offset and verdict of a track under `audio` (`heard`: its VAD mask), or under its
        own audio shifted by `shift` frames read off `wide` (its matrix at offsets ±reach)."""
        t1 = time.perf_counter()
        if wide is None:
            wide = backend.matrix(crops, backend.features(audio), 0)
        t2 = time.perf_counter()
        centre = (len(wide) - 1) // 2 - shift  # the row of offset 0 under the shifted audio
        matrix = wide[centre - max_offset : centre + max_offset + 1]
        plain = analyze_track(matrix, speech=heard)
        labelled = analyze_track(matrix, speech=speech)
        t3 = time.perf_counter()
        timings["matrix"] += t2 - t1
        timings["analyze"] += t3 - t2
        return {
            "offset": plain.offset_frames,
            "prob_at_offset": round(plain.prob_at_offset, 4),
            "offscreen_ratio": round(plain.offscreen_ratio, 4),
            "in_sync": plain.in_sync,
            "in_sync_labels": labelled.in_sync,
        }

    rows, mismatches = [], []
    for j, i in enumerate(chosen):
        track = corpus.track(i)
        crops = np.array(track.crops)  # a writable copy for torch
        audio, labels = np.asarray(track.audio), np.asarray(track.labels, bool)
        wide = None
        if args.method == "rows":
            t0 = time.perf_counter()
            wide = backend.matrix(crops, backend.features(audio), 0)
            timings["matrix"] += time.perf_counter() - t0
        # VAD once per track: a shift moves its mask with the audio (zeros hold no speech).
        own_voice = voiced(audio, len(labels))
        for s in shifts:
            t0 = time.perf_counter()
            moved, speech = shift_audio(audio, s), shift_labels(labels, s)
            heard = shift_labels(own_voice, s)
            timings["shift"] += time.perf_counter() - t0
            row = {"track": track.video_id, "frames": len(labels), "shift": s}
            row |= analyse(crops, moved, heard, speech, wide, s if wide is not None else 0)
            row["found"] = abs(row["offset"] - s) <= 1
            rows.append(row)
        own = {r["shift"]: r["offset"] for r in rows[-len(shifts) :]}.get(0)
        for r in rows[-len(shifts) :]:
            r["found_relative"] = own is not None and abs(r["offset"] - own - r["shift"]) <= 1
        other = corpus.track(partner(corpus, chosen, j))
        row = {"track": track.video_id, "audio_of": other.video_id, "frames": len(labels)}
        speech = fit(np.asarray(other.labels, bool), len(labels))
        voice = fit(np.asarray(other.audio), len(audio))
        row |= analyse(crops, voice, voiced(voice, len(labels)), speech)
        mismatches.append(row)
        found = sum(r["found"] for r in rows[-len(shifts) :])
        print(f"{track.video_id}: {found}/{len(shifts)} shifts found", flush=True)

    per_shift = []
    for s in shifts:
        mine = [r for r in rows if r["shift"] == s]
        per_shift.append(
            {
                "shift": s,
                "found_pct": pct([r["found"] for r in mine]),
                "in_sync_pct": pct([r["in_sync"] for r in mine]),
                "in_sync_labels_pct": pct([r["in_sync_labels"] for r in mine]),
                "mean_prob_at_offset": round(
                    float(np.mean([r["prob_at_offset"] for r in mine])), 4
                ),
            }
        )
    near = [r for r in rows if abs(r["shift"]) <= 1]
    far = [r for r in rows if abs(r["shift"]) > 1]
    summary = {
        "found_pct": pct([r["found"] for r in rows]),
        "found_relative_pct": pct([r["found_relative"] for r in rows]) if 0 in shifts else None,
        "in_sync_when_in_sync_pct": pct([r["in_sync"] for r in near]),
        "in_sync_labels_when_in_sync_pct": pct([r["in_sync_labels"] for r in near]),
        "in_sync_when_shifted_pct": pct([r["in_sync"] for r in far]),
        "in_sync_labels_when_shifted_pct": pct([r["in_sync_labels"] for r in far]),
        "another_voice_not_in_sync_pct": pct([not r["in_sync"] for r in mismatches]),
        "another_voice_not_in_sync_labels_pct": pct([not r["in_sync_labels"] for r in mismatches]),
    }
    timings["total"] = time.perf_counter() - clock

    print("\n| shift | found ±1 (%) | in sync (%) | in sync, labels (%) | prob at offset |")
    print("|---|---|---|---|---|")
    for p in per_shift:
        print(
            f"| {p['shift']:+d} | {p['found_pct']:.1f} | {p['in_sync_pct']:.1f} | "
            f"{p['in_sync_labels_pct']:.1f} | {p['mean_prob_at_offset']:.3f} |"
        )
    print(f"\n{len(chosen)} tracks, {len(rows)} (track, shift) pairs, search ±{max_offset}")
    placed_off = {r["track"]: r["offset"] for r in rows if r["shift"] == 0 and abs(r["offset"]) > 1}
    if placed_off:
        listed = ", ".join(f"{t} {o:+d}" for t, o in placed_off.items())
        print(f"tracks placed beyond ±1 before any shift ({len(placed_off)}): {listed}")
    for key, value in summary.items():
        print(f"{key}: {value}")
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))

    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.split == "test" else f"_{args.split}"
    if sources:
        suffix += "_" + "-".join(sorted(sources))
    if args.audio_lag_ms is not None:
        suffix += f"_lag{args.audio_lag_ms:g}"
    path = args.out / f"sync_sweep_{args.model}{suffix}.json"
    config = {
        "model": args.model,
        "weights": args.weights,
        "corpus": str(corpus.root),
        "tracks": len(chosen),
        "shifts": shifts,
        "max_offset": max_offset,
        "min_frames": args.min_frames,
        "sources": sorted(sources) if sources else None,
        "audio_lag_ms": backend.audio_delay * 1000 / SAMPLE_RATE,
        "method": args.method,
    }
    result = {
        "config": config,
        "summary": summary,
        "per_shift": per_shift,
        "seconds": {k: round(v, 2) for k, v in timings.items()},
        "rows": rows,
        "another_voice": mismatches,
    }
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
