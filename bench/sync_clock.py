"""Where each source's sync peak lies: the clock of the clips, by models and without one.

For each (split, clip folder) of the corpus, up to `--per-source` speaking tracks (seeded
draw): the peak of the mean offset curve, in frames (> 0: audio later than the lips), found by
the parabola through the curve's maximum, and the most common whole-track offsets:
- per sync backend (`--models`): the mean over tracks of each track's mean logit per row over
  its speaking frames (frames K … T−K−1, as `bench/sync_by_source.py`), read on the weights'
  own clock (`--audio-lag-ms 0`, the default here: this script measures that clock);
- `motion`, model-free: the cross-correlation of the mouth region's motion (mean absolute
  difference of consecutive lower-half crops) with the audio's log-RMS loudness per frame.
  Lips move before the sound, so its zero is its own; only differences between sources count.
"rise" is the mean curve's maximum over the mean of its two ends (logit for the backends): a
backend whose curve barely rises cannot referee a clock.
The table "The training clips' clock" of docs/sync.md is this script's output.

    python bench/sync_clock.py [--models sync-pair,light-syncnet,ic-syncnet] [--per-source 60]
    python bench/sync_clock.py --models light-asd=../shared/data/weights/light_asd_ava.model
"""

from __future__ import annotations

import argparse
import time
from collections import Counter, defaultdict

import numpy as np
from scipy.special import logit
from sync_by_source import source

from syncasd.evaluate import syncacc
from syncasd.offsets import offset_backend
from syncasd.timebase import SAMPLES_PER_FRAME

MOTION = "motion"


def peak(curve: np.ndarray, lags: np.ndarray) -> float:
    """The lag of the curve's maximum, refined by the parabola through it and its neighbours."""
    j = int(np.argmax(curve))
    if not 0 < j < len(curve) - 1:
        return float(lags[j])
    a, b, c = curve[j - 1], curve[j], curve[j + 1]
    return float(lags[j] + 0.5 * (a - c) / (a - 2 * b + c))


def motion_curve(track, k: int) -> np.ndarray:
    """corr(mouth motion at t, loudness at t + lag) for lag −k … k (z-scored, mean product)."""
    crops = np.asarray(track.crops, np.float32)
    motion = np.abs(np.diff(crops[:, 56:, 20:92], axis=0)).mean((1, 2))  # frames 1 … T−1
    n = len(crops)
    audio = np.asarray(track.audio, np.float32)[: n * SAMPLES_PER_FRAME].reshape(n, -1)
    loudness = np.log(np.sqrt((audio**2).mean(1)) + 1.0)[1:]
    x = (motion - motion.mean()) / (motion.std() + 1e-6)
    y = (loudness - loudness.mean()) / (loudness.std() + 1e-6)
    m = len(x)
    return np.array(
        [
            np.mean(x[: m - s] * y[s:]) if s >= 0 else np.mean(x[-s:] * y[: m + s])
            for s in range(-k, k + 1)
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models",
        default="sync-pair,light-syncnet,ic-syncnet",
        help="NAME[=WEIGHTS],…, e.g. light-asd=../shared/data/weights/light_asd_ava.model",
    )
    parser.add_argument("--per-source", type=int, default=60, help="tracks per split and folder")
    parser.add_argument("--max-offset", type=int, default=5, help="lags −K … K (frames)")
    parser.add_argument("--audio-lag-ms", type=float, default=0.0, help="0: the weights' clock")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    k = args.max_offset
    corpus = syncacc.find_corpus(None)
    rng = np.random.default_rng(args.seed)
    chosen: list[tuple[str, str, int]] = []
    for split in ("train", "val", "test"):
        groups = defaultdict(list)
        for i in corpus.split(split):
            if not corpus.tracks[i].negative:
                groups[source(corpus.tracks[i].video_id)].append(i)
        for name, ids in groups.items():
            chosen += [(split, name, int(i)) for i in rng.permutation(ids)[: args.per_source]]
    lags = np.arange(-k, k + 1)
    for model in [MOTION, *args.models.split(",")]:
        clock = time.perf_counter()
        curves, offsets = defaultdict(list), defaultdict(list)
        registry_name, _, weights = model.partition("=")
        backend = (
            None
            if model == MOTION
            else offset_backend(registry_name, weights or None, k, audio_lag_ms=args.audio_lag_ms)
        )
        for split, name, i in chosen:
            track = corpus.track(i)
            if model == MOTION:
                if len(track.labels) >= 3 * k:
                    curves[split, name].append(motion_curve(track, k))
                continue
            valid = np.asarray(track.labels, bool)[k : len(track.labels) - k]
            if valid.sum() < 5:
                continue
            crops = np.array(track.crops[k : k + len(valid)])
            matrix = backend.matrix(crops, backend.features(np.asarray(track.audio)), k)
            curve = logit(np.clip(matrix[:, valid], 1e-4, 1 - 1e-4)).mean(1)
            curves[split, name].append(curve)
            offsets[split, name].append(int(np.argmax(curve)) - k)
        print(f"\n## {model} ({time.perf_counter() - clock:.0f} s)\n")
        print(
            "| split | source | tracks | peak (frames) | rise (peak − ends) | most common offsets |"
        )
        print("|---|---|---|---|---|---|")
        for split, name in sorted(curves):
            common = ", ".join(
                f"{o:+d} ({c})" for o, c in Counter(offsets[split, name]).most_common(4)
            )
            mean, n = np.mean(curves[split, name], 0), len(curves[split, name])
            rise = mean.max() - 0.5 * (mean[0] + mean[-1])  # how sharply the source's clock shows
            print(
                f"| {split} | {name} | {n} | {peak(mean, lags):+.2f} | {rise:.2f} | {common} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
