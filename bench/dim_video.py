"""Dim video through the whole pipeline: the share of frames `detect` calls speaking on a
clip and on a dimmed, noisy copy of it (every pixel × 0.35 plus noise of σ = 6 levels, as
`evaluate.ablations.dim` does to crops; re-encoded, its audio attached again), so the face
detector and tracker see the dark video too, not only the model.

    python bench/dim_video.py                                  # the default, five test clips
    python bench/dim_video.py --model light-asd=../shared/data/weights/light_asd_ava.model
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import av
import numpy as np

from syncasd.data.compose import replace_audio
from syncasd.evaluate.ablations import dim_pixels
from syncasd.evaluate.report import markdown_table
from syncasd.media import read_audio
from syncasd.pipeline import Detector

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "clips"
# One clip of five test identities (syncasd/data/splits/shared.json), all of them speaking.
CLIPS = [
    "vasp/ID1/014.mp4",
    "vasp/ID3/016.mp4",
    "lrs2/00004.mp4",
    "voxceleb2/id00100_0azO2YG6Bq0_00002.mp4",
    "grid/sbia1a.mpg",
]


def dimmed_copy(src: Path, dst: Path) -> Path:
    """`src` with every frame dimmed (seeded), its audio attached again (`replace_audio`)."""
    rng = np.random.default_rng(0)
    silent = dst.with_name(f"{dst.stem}-video.mp4")
    with av.open(str(src)) as inp, av.open(str(silent), "w") as out:
        video_in = inp.streams.video[0]
        video = out.add_stream("libx264", rate=video_in.average_rate)
        video.width, video.height, video.pix_fmt = video_in.width, video_in.height, "yuv420p"
        for frame in inp.decode(video_in):
            pixels = dim_pixels(frame.to_ndarray(format="rgb24"), rng)
            out.mux(video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(video.encode())
    replace_audio(silent, dst, audio=read_audio(src))
    return dst


def speaking_share(detector: Detector, path: Path) -> tuple[float, int]:
    """(% of tracked face-frames at or above the threshold, number of tracks)."""
    result = detector(path)
    probs = np.concatenate([t.probs for t in result.tracks]) if result.tracks else np.zeros(0)
    share = 100 * float(np.mean(probs >= result.threshold)) if probs.size else 0.0
    return share, len(result.tracks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, metavar="NAME[=CHECKPOINT]")
    args = parser.parse_args()
    if not DATA.exists():
        print(f"needs {DATA}", file=sys.stderr)
        return 2
    options = {}
    if args.model:
        name, _, weights = args.model.partition("=")
        options = {"model": name, "weights": weights or None}
    detector = Detector(**options)
    rows, shares = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in CLIPS:
            src = DATA / clip
            dark = dimmed_copy(src, Path(tmp) / f"dim-{src.stem}.mp4")
            (plain, n_plain), (dimmed, n_dim) = (speaking_share(detector, p) for p in (src, dark))
            rows.append([clip, f"{plain:.1f}", f"{dimmed:.1f}", f"{n_plain} / {n_dim}"])
            shares.append((plain, dimmed))
    plain, dimmed = np.mean(shares, axis=0)
    rows.append(["mean over the clips", f"{plain:.1f}", f"{dimmed:.1f}", ""])
    print(f"model: {args.model or 'the default'}")
    headers = ["clip", "speaking % (as is)", "speaking % (dim)", "tracks (as is / dim)"]
    print(markdown_table(headers, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
