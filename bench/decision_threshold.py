"""Each model's operating point: what `detect`'s threshold of 0.5 calls speaking, and the best
threshold, on the evaluation suite's original tracks; then the share of speech still called
speaking at 0.5 when the faces are small (32 and 24 px) or the video dim and noisy.

The best threshold is the one of highest balanced accuracy (TPR − FPR, Youden's J), the rule
`syncasd train` uses to calibrate what it exports (`train.decision_shift`); the shift is the
logit bias that moves it to 0.5. Chosen on the validation identities, then printed on test.
A model that already carries a bias (the default: `LipGatedLightASD.decision_shift`) prints
what would be added to it, near zero once calibrated, and a second row: the same scores read
without that bias (at the threshold σ(bias)).

    python bench/decision_threshold.py                        # the default, validation
    python bench/decision_threshold.py --split test sync-light-asd-gated light-asd.ava
    python bench/decision_threshold.py sync-light-asd-gated=runs/candidate.pt   # a candidate
"""

from __future__ import annotations

import argparse

import numpy as np
from eval_suite import material, model_spec
from scipy.special import expit

from syncasd.evaluate.ablations import dim, shrink_face
from syncasd.evaluate.report import markdown_table
from syncasd.evaluate.tracks import model_scorer, score_tracks
from syncasd.models.zoo import get_spec
from syncasd.train import decision_shift


def rates(scores: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float]:
    """(TPR, FPR) in % of frames at or above `threshold`."""
    called = scores >= threshold
    return 100 * called[labels].mean(), 100 * called[~labels].mean()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "models", nargs="*", default=["sync-light-asd-gated"], metavar="NAME[=CHECKPOINT]"
    )
    parser.add_argument("--split", choices=("val", "test"), default="val")
    args = parser.parse_args()
    # The suite's material: every validation clip, three test clips per identity.
    tracks = material(3 if args.split == "test" else 10**6, args.split)
    labels = np.concatenate([t.labels for t in tracks])
    degraded = {
        "32 px": [shrink_face(t, 32) for t in tracks],
        "24 px": [shrink_face(t, 24) for t in tracks],
        "dim": [dim(t) for t in tracks],
    }
    rows = []
    for name in args.models:
        _, scorer = model_scorer(model_spec(name))
        scores = np.concatenate(score_tracks(scorer, tracks))
        worse = [np.concatenate(score_tracks(scorer, t)) for t in degraded.values()]
        shift = decision_shift(labels, scores)
        best = expit(-shift)
        rows.append(
            [name, *rates(scores, labels, 0.5), f"{best:.3f}", f"{shift:+.3f}"]
            + [*rates(scores, labels, best)]
            + [rates(w, labels, 0.5)[0] for w in worse]
        )
        bias = getattr(get_spec(name.partition("=")[0]).builder, "decision_shift", 0.0)
        if bias:  # the scores without the model's own bias: p ≥ 0.5 before it
            before = expit(bias)
            # A logit bias is monotone: the best frames are the same, at threshold σ(logit − bias).
            rows.append(
                [f"{name} without its bias ({bias:+.3f})", *rates(scores, labels, before)]
                + [f"{expit(-shift - bias):.3f}", f"{shift + bias:+.3f}", *rows[-1][5:7]]
                + [rates(w, labels, before)[0] for w in worse]
            )
    print(f"{len(tracks)} {args.split} tracks, {len(labels)} frames, {labels.mean():.1%} speaking")
    headers = ["model", "TPR at 0.5", "FPR at 0.5", "best threshold", "logit shift", "TPR", "FPR"]
    headers += [f"TPR at 0.5, {condition}" for condition in degraded]
    print(markdown_table(headers, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
