"""Time and peak memory of the audio features a whole soundtrack needs, by its length.

Each length runs in a fresh process: seeded noise as 16 kHz int16 (no file to decode), then
`asd_features` (the MFCC rows every ASD model reads), with and without the 100-Hz log-mel
beside them, and Silero VAD's speech frames (`speech_frames`: the sync backends, `detect --sync`
and `--require-sync` run it on the whole soundtrack). The memory column is the peak RSS each
added over the process with the samples already in it: what `detect` pays on top of the
decoded soundtrack.

    python bench/audio_features.py --minutes 10 60 [--kinds mfcc mel vad]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

KINDS = {"mfcc": "MFCC", "mel": "MFCC + log-mel", "vad": "Silero VAD"}


def _measure(minutes: float, kind: str) -> dict:
    import numpy as np

    from syncasd.audio import asd_features, speech_frames

    samples = int(minutes * 60 * 16000)
    audio = np.empty(samples, np.int16)
    rng = np.random.default_rng(0)
    step = 16000 * 60  # filled a minute at a time so the float noise never lives whole
    for i in range(0, samples, step):
        n = min(step, samples - i)
        audio[i : i + n] = (rng.standard_normal(n) * 3000).astype(np.int16)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    if kind == "vad":
        features = speech_frames(audio)
    else:
        features = asd_features(audio, kind == "mel")
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "minutes": minutes,
        "kind": kind,
        "rows": int(features.shape[0]),
        "seconds": round(seconds, 2),
        "features_mb": round(features.nbytes / 2**20, 1),
        "peak_added_mb": round(after - before, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0, 60.0])
    parser.add_argument("--kinds", nargs="+", choices=list(KINDS), default=list(KINDS))
    parser.add_argument("--one", nargs=2, metavar=("MINUTES", "KIND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # the child: one measurement, one JSON line
        print(json.dumps(_measure(float(args.one[0]), args.one[1])))
        return
    print("| minutes | features | rows | seconds | features (MB) | peak RSS added (MB) |")
    print("|---|---|---|---|---|---|")
    for minutes in args.minutes:
        for kind in args.kinds:
            out = subprocess.run(
                [sys.executable, __file__, "--one", str(minutes), kind],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(
                f"| {r['minutes']:g} | {KINDS[kind]} | {r['rows']} | {r['seconds']} | "
                f"{r['features_mb']} | {r['peak_added_mb']} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
