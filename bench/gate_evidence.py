"""Screen definitions of the lip gate's evidence before any suite run: how well each tells a
face's own voice from a dub, frame by frame.

The evaluation suite's speaking tracks (`bench/eval_suite.py`, validation by default) and their
dubbed twins (each run of speech replaced by another video's voice, labels kept). A gated
model's lip-sync curves c_t(k) (the default's unless `--model` names another;
`LipGatedLightASD.sync_curves`, weighted by the ensemble's speaking probability, in windows
of 150 frames) are computed once per track, and each definition of the evidence e(t) is
scored by the AUROC of own-voice frames against the same frames dubbed (50 = no use). The
bundled gates use "median": max of c within ±2 of 0 minus the median over all offsets.
About 3 minutes on 2 cores.

    python bench/gate_evidence.py [--split val] [--model sync-light-asd-gated]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from eval_suite import SEED, material
from scipy.stats import mannwhitneyu

from syncasd.audio import asd_features, reads_mel
from syncasd.data.unsync import mismatch
from syncasd.defaults import DEFAULT_MODEL
from syncasd.evaluate.report import markdown_table
from syncasd.models import load_model
from syncasd.models.ensemble import GATE_MAX_OFFSET as K
from syncasd.models.ensemble import SyncGatedLightASD

WINDOW = 150  # frames per scoring window


def curves(model, track) -> np.ndarray:
    """(2K + 1, T) the gate's curves over a whole track, window by window."""
    features = asd_features(np.asarray(track.audio), with_mel=reads_mel(model))
    n = len(track.labels)
    out = np.zeros((2 * K + 1, n))
    for a in range(0, n, WINDOW):
        b = min(n, a + WINDOW)
        a = min(a, max(0, b - 30))  # a short last window reaches back to 30 frames
        video = torch.from_numpy(np.asarray(track.crops[a:b], np.float32))[None]
        audio = torch.from_numpy(np.asarray(features[4 * a : 4 * b], np.float32))[None]
        with torch.no_grad():
            # The ensemble's probability: what the gate weighs the frames by.
            weights = SyncGatedLightASD.speaking_log_prob(model, video, audio).exp()
            out[:, a:b] = model.sync_curves(video, audio, weights)[0].numpy()
    return out


def evidences(c: np.ndarray) -> dict[str, np.ndarray]:
    near = c[K - 2 : K + 3].max(0)
    median = np.median(c, 0)
    far = np.concatenate([c[: K - 3], c[K + 4 :]])  # |k| >= 4
    return {
        "median (bundled)": near - median,
        "max - max over |k| >= 4": near - far.max(0),
        "max - mean": near - c.mean(0),
        "(max - median) / std": (near - median) / c.std(0).clip(1e-6),
        "max within ±1 - median": c[K - 1 : K + 2].max(0) - median,
        "mean within ±2 - median": c[K - 2 : K + 3].mean(0) - median,
        "max - 75th percentile": near - np.quantile(c, 0.75, axis=0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="a lip-gated registry model")
    args = parser.parse_args()
    model = load_model(args.model).eval()
    everything = material(3 if args.split == "test" else 10**6, args.split)
    tracks = [t for t in everything if t.labels.any()]
    dubbed = mismatch(tracks, np.random.default_rng(SEED), keep_labels=True)
    own: dict[str, list[np.ndarray]] = {}
    dub: dict[str, list[np.ndarray]] = {}
    for track, twin in zip(tracks, dubbed, strict=True):
        speaking = track.labels.astype(bool)
        for into, t in ((own, track), (dub, twin)):
            for name, e in evidences(curves(model, t)).items():
                into.setdefault(name, []).append(e[speaking])
    rows = []
    for name in own:
        o, d = np.concatenate(own[name]), np.concatenate(dub[name])
        rows.append([name, 100 * mannwhitneyu(o, d).statistic / (len(o) * len(d))])
    print(
        f"{args.model}, {len(tracks)} {args.split} speaking tracks; AUROC of own voice against "
        "a dub, per frame"
    )
    print(markdown_table(["evidence", "AUROC (%)"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
