"""Each model's operating point: what `detect`'s threshold of 0.5 calls speaking, and the best
threshold, on the evaluation suite's original tracks; then the share of speech still called
speaking at 0.5 when the faces are small (32 and 24 px) or the video dim and noisy; then, in a
second table, what it calls speaking, speech and silence, with pink noise 20, 10 and 0 dB below
the speech (`evaluate.ablations.noisy`: a noisy room or street; training mixed in white noise at
10–40 dB and other voices at 5–20 dB); then, in a third, the same with another video's voice
10, 5 and 0 dB below the speech, labels kept (`evaluate.ablations.talked_over`: crosstalk, a
debate, a busy room; the face still speaks where it did).

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

from syncasd.evaluate.ablations import dim, noisy, shrink_face, talked_over
from syncasd.evaluate.report import markdown_table
from syncasd.evaluate.tracks import model_scorer, score_tracks
from syncasd.models.zoo import get_spec
from syncasd.train import decision_shift

NOISE_SNR_DB = (20.0, 10.0, 0.0)
VOICE_SNR_DB = (10.0, 5.0, 0.0)


def rates(scores: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float]:
    """(TPR, FPR) in % of frames at or above `threshold`."""
    called = scores >= threshold
    return 100 * called[labels].mean(), 100 * called[~labels].mean()


def snr_rates(scorer, conditions: dict[float, list], labels: np.ndarray) -> list[float]:
    """TPR, FPR at 0.5 under each SNR's tracks, in the order of `conditions`."""
    out = []
    for tracks in conditions.values():
        out += rates(np.concatenate(score_tracks(scorer, tracks)), labels, 0.5)
    return out


def snr_headers(snrs: tuple[float, ...]) -> list[str]:
    return [f"{rate}, {snr:g} dB" for snr in snrs for rate in ("TPR", "FPR")]


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
    loud = {snr: [noisy(t, snr) for t in tracks] for snr in NOISE_SNR_DB}
    crosstalk = {snr: talked_over(tracks, snr) for snr in VOICE_SNR_DB}
    rows, noise_rows, voice_rows = [], [], []
    for name in args.models:
        _, scorer = model_scorer(model_spec(name))
        scores = np.concatenate(score_tracks(scorer, tracks))
        worse = [np.concatenate(score_tracks(scorer, t)) for t in degraded.values()]
        noise_rows.append([name, *rates(scores, labels, 0.5), *snr_rates(scorer, loud, labels)])
        voice_rows.append([name, *snr_rates(scorer, crosstalk, labels)])
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
    print("\nAt 0.5 with pink noise under the sound, SNR against the speech:")
    print(markdown_table(["model", "TPR", "FPR", *snr_headers(NOISE_SNR_DB)], noise_rows))
    print("\nAt 0.5 with another voice over the sound (labels kept), SNR against the speech:")
    print(markdown_table(["model", *snr_headers(VOICE_SNR_DB)], voice_rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
