"""Train the shipped recipe and its ablations, then score each on the TEST identities.

Light-ASD variants: the shipped config `sync-light-asd` (Light-ASD, AVA checkpoint, visual
stem frozen, train identities of ../shared/data) with one loss term changed:

- full:          β = 1 (mismatched: another track's voice), β_m = 1 (misaligned: own voice
                 shifted ≥ 160 ms), stage 1 of the shipped model;
- no-misaligned: β = 1, β_m = 0, Sync-TalkNet's loss as the seed trains it;
- no-contrast:   β = 0, β_m = 0, the same data and steps with the plain ASD loss only.

Sync-TalkNet variants: TalkNet's attention backend on the same encoders
(`models/light_talknet.py`, configs `light-sync-talknet` and `light-talknet`):

- sync-talknet:       positional encoding + contrastive loss (β = 1), the seed's model;
- sync-talknet-no-pe: the contrastive loss without the positional encoding;
- talknet:            neither, the TalkNet control;
- sync-talknet-band:  no PE, each attention within ±1 s of its query (`light-talknet-band`),
                      the contrastive loss for both mismatched and misaligned voices.

Each run is resumable (its last.ckpt, in runs/ablation-<name>) and scored on the test tracks of
`bench/eval_suite.py` (original tracks, 50 % mismatched and misaligned, dubbed-video AUROC) and
on its who-speaks scenes; `light-asd.ava` beside them (unless --no-baseline). Prints one
Markdown table and writes it to --out (bench/results/ablations.md). Stage 2 of the shipped
recipe is not ablated here.

    python bench/train_ablations.py [--epochs N] [--only full,no-contrast] [--freeze visual]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from eval_suite import CLIPS, DATA, MODELS, SEED, dubbed_set, material  # noqa: E402

from syncasd.data.splits import Split  # noqa: E402
from syncasd.evaluate import dubbing, whospeaks  # noqa: E402
from syncasd.evaluate.tracks import model_scorer, pooled_map, score_tracks  # noqa: E402
from syncasd.evaluate.unsync import UnsyncTest  # noqa: E402
from syncasd.train import TrainConfig, train  # noqa: E402

# name → (shipped config, loss terms changed)
VARIANTS = {
    "full": ("sync-light-asd", {"beta": 1.0, "misalign_beta": 1.0}),
    "no-misaligned": ("sync-light-asd", {"beta": 1.0, "misalign_beta": 0.0}),
    "no-contrast": ("sync-light-asd", {"beta": 0.0, "misalign_beta": 0.0}),
    # TalkNet's attention backend on the same encoders (models/light_talknet.py):
    "sync-talknet": ("light-sync-talknet", {"beta": 1.0, "misalign_beta": 0.0}),
    "sync-talknet-no-pe": ("light-talknet", {"beta": 1.0, "misalign_beta": 0.0}),
    "talknet": ("light-talknet", {"beta": 0.0, "misalign_beta": 0.0}),
    "sync-talknet-band": ("light-talknet-band", {"beta": 1.0, "misalign_beta": 1.0}),
}
OUT = Path(__file__).parent / "results"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="override the config's")
    parser.add_argument("--only", default=",".join(VARIANTS), help="comma-separated variants")
    parser.add_argument(
        "--freeze",
        choices=("visual", "visual-stem"),
        default=None,
        help="override the configs' frozen part; 'visual' trains on the frozen encoder's "
        "embeddings, computed once per track (several epochs fit a CPU session)",
    )
    parser.add_argument("--runs", default="runs", help="folder of the ablation run folders")
    parser.add_argument("--no-baseline", action="store_true", help="do not score light-asd.ava")
    parser.add_argument(
        "--trained",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a variant trained before (full=runs/sync-light-asd/model.pt): scored, not trained",
    )
    parser.add_argument("--out", type=Path, default=OUT / "ablations.md", help="Markdown table")
    args = parser.parse_args()
    if not DATA.exists():
        print(f"needs {DATA}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    weights = {}
    for item in args.trained:
        name, _, path = item.partition("=")
        if name not in VARIANTS or not Path(path).is_file():
            print(f"--trained {item}: expected NAME=PATH with NAME in {', '.join(VARIANTS)}")
            return 2
        weights[name] = Path(path)
    for name in [n for n in args.only.split(",") if n and n not in weights]:
        config_name, loss = VARIANTS[name]
        base = TrainConfig.load(config_name)
        overrides = {"loss": {**base.loss.__dict__, **loss}}
        # Each variant in its own folder, the full recipe too: the shipped run's folder holds
        # its own epoch count, which an --epochs override could not resume.
        frozen = f"-frozen-{args.freeze}" if args.freeze else ""
        overrides["output"] = str(Path(args.runs) / f"ablation-{name}{frozen}")
        if args.freeze:
            overrides["freeze"] = [args.freeze]
        if args.epochs:
            overrides["epochs"] = args.epochs
        config = TrainConfig.load(config_name, overrides)
        t0 = time.perf_counter()
        weights[name] = train(config, progress=False)
        print(f"{name}: trained in {time.perf_counter() - t0:.0f} s → {weights[name]}", flush=True)

    tracks = material(3)
    test = UnsyncTest(tracks, shares=(50,), seed=SEED)
    dubbed_tracks, dubbed = dubbed_set(tracks, SEED)
    scenes = whospeaks.WhoSpeaksTest(
        Split.load().clips(CLIPS, "test"), scenes=10, seed=SEED, duration=4.0
    )
    specs = {} if args.no_baseline else {"light-asd.ava": f"light-asd={MODELS['light-asd.ava']}"}
    models = {name: TrainConfig.load(VARIANTS[name][0]).model for name in weights}
    specs |= {f"ours, {name}": f"{models[name]}={path}" for name, path in weights.items()}
    rows = []
    for label, spec in specs.items():
        _, scorer = model_scorer(spec)
        original = score_tracks(scorer, tracks)
        u = test.run(scorer, label, original=original)
        scores = score_tracks(scorer, dubbed_tracks)
        videos = np.concatenate([[t.video_id] * len(t) for t in dubbed_tracks])
        labels = np.concatenate([t.labels for t in dubbed_tracks])
        ranked = dubbing.video_tprs(videos, labels, np.concatenate(scores) >= 0.5)
        who = scenes.run(spec, label)
        rows.append(
            [
                label,
                pooled_map([t.labels for t in tracks], original),
                u.maps["mismatch"][0],
                u.maps["misalign"][0],
                dubbing.separation(ranked, dubbed)["auroc"],
                100 * who.share_all,
                who.map_all,
            ]
        )
        print(rows[-1], flush=True)
    headers = [
        "model",
        "mAP original",
        "50 % mismatched",
        "50 % misaligned",
        "dubbed AUROC",
        "who-speaks heard first %",
        "who-speaks mAP",
    ]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append(f"| {row[0]} | " + " | ".join(f"{v:.1f}" for v in row[1:]) + " |")
    table = "\n".join(lines)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
