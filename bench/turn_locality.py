"""Does a model say who speaks now, or who speaks somewhere in the window? Windows of the
corpus's validation (or test) tracks in which another identity takes the floor for 1-2.4 s
(`samples.turn_prob`: its voice in place of the own audio there), scored per frame:

- AUROC, over the frames whose lips speak, of the own voice (in sync) against the turn (lips
  moving, another voice heard): 50 = the model cannot tell them apart inside one window;
- the mean speaking logit of the own voice's frames in plain windows and in windows with a
  turn: a window-level model lowers the whole window when another voice is in it.

    python bench/turn_locality.py sync-light-asd sync-light-asd=runs/x/model.pt
    python bench/turn_locality.py --split test --batches 6 sync-light-asd-gated

No audio noise, gain or face augmentation; a fixed seed, so two models see the same windows.
About 20 s per 800-frame batch and model for Light-ASD on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.stats import mannwhitneyu

from syncasd.data.samples import BatchMaker, SampleConfig
from syncasd.evaluate.report import markdown_table
from syncasd.models import load_model
from syncasd.train import TrainConfig, open_corpus

CLEAN = dict(noise_prob=0.0, silence_prob=0.0, white_noise_prob=0.0, flip_prob=0.0)


def window_logits(model, maker: BatchMaker, batches: int) -> dict[str, np.ndarray]:
    """Per frame of `batches` batches: the speaking logit, the labels, what the lips do."""
    out: dict[str, list[np.ndarray]] = {"logit": [], "labels": [], "lips": []}
    for b in range(batches):
        batch = maker(0, b)
        with torch.no_grad():
            logits = model.frame_logits(
                torch.from_numpy(batch["visual"]), torch.from_numpy(batch["mfcc"])
            )
        out["logit"].append((logits[..., 1] - logits[..., 0]).numpy().ravel())
        out["labels"].append(batch["labels"].ravel())
        out["lips"].append(batch.get("visual_labels", batch["labels"]).ravel())
    return {k: np.concatenate(v) for k, v in out.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="NAME[=PATH]")
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--frames", type=int, default=800, help="frames per batch")
    args = parser.parse_args()
    corpus = open_corpus(TrainConfig.load("sync-light-asd"), progress=False)
    tracks = corpus.split(args.split)
    common = dict(batch_frames=args.frames, gain_db=(0.0, 0.0), **CLEAN)
    turns = BatchMaker(corpus, tracks, SampleConfig(turn_prob=1.0, **common), seed=123)
    plain = BatchMaker(corpus, tracks, SampleConfig(**common), seed=123)
    rows = []
    for spec in args.models:
        t0 = time.perf_counter()
        name, _, path = spec.partition("=")
        model = load_model(name, weights=path or None).eval()
        mixed = window_logits(model, turns, args.batches)
        alone = window_logits(model, plain, args.batches)
        own = mixed["logit"][mixed["labels"] == 1]
        other = mixed["logit"][(mixed["lips"] == 1) & (mixed["labels"] == 0)]
        auroc = mannwhitneyu(own, other).statistic / (len(own) * len(other))
        plain_own = alone["logit"][alone["labels"] == 1]
        rows.append(
            [
                spec,
                round(100 * auroc, 1),
                round(float(plain_own.mean()), 2),
                round(float(own.mean()), 2),
                round(float(other.mean()), 2),
                len(own) + len(other),
            ]
        )
        print(f"{spec}: {time.perf_counter() - t0:.0f} s", flush=True)
    print(
        markdown_table(
            [
                "model",
                "AUROC own voice vs turn (lips speaking)",
                "logit, own voice, plain windows",
                "logit, own voice, windows with a turn",
                "logit, turn",
                "frames",
            ],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
