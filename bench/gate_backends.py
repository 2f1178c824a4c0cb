"""Which lip-sync model should gate the default? The suite's track protocols (original,
50 % mismatched, 50 % misaligned, dubbed-video AUROC) for the default's ensemble gated by a
lip gate read from any sync backend, before anything is built into a model.

The default (`MelGatedLightASD`, IC-SyncNet's gate, since stop 42; `LipGatedLightASD`'s
family) multiplies its ensemble's speaking probability p by
g = σ(slope · (e − centre)), e the evidence that the voice is in sync with the lips near frame
t (`LipGatedLightASD`). Here the same is computed outside the model: the ensemble (the default
without its gate) is scored as `detect` scores; the chosen sync backend (`syncasd sync
--model NAME`, audio lag 0 as the gate hears it) gives logit curves at every offset over the
whole track, averaged around each frame with the gate's Gaussian weighted by p; e = the
maximum within ±GATE_NEAR frames of 0 minus the median; the bias that moves the best
threshold (Youden's J) to 0.5 is derived on the same tracks, as `syncasd train` calibrates.
Each backend is given as NAME:SLOPE:CENTRE. The two defaults are the shapes of the bundled
gates: `light-syncnet`'s (`sync-light-asd-talknet-gated`, the default until stop 42) and
`ic-syncnet`'s (the default's, read here from the mouths as they are, where the model
standardises their gray levels first). Both are controls, not copies of the models: the gate
inside a model computes its curves per scoring window instead of over the whole track.

    python bench/gate_backends.py                         # validation, light-syncnet vs ic-syncnet
    python bench/gate_backends.py --gate ic-syncnet:3.69:0.975 --split val

About 15 minutes on this machine's 2 cores for the two gates on validation.
"""

from __future__ import annotations

import argparse
import hashlib

import numpy as np
import torch
from eval_suite import SEED, dubbed_ranking, dubbed_set, material
from scipy.special import expit, logit

from syncasd.defaults import DEFAULT_MODEL
from syncasd.evaluate import dubbing, unsync
from syncasd.evaluate.report import markdown_table
from syncasd.evaluate.tracks import asd_scorer, pooled_map, score_tracks
from syncasd.models import load_model
from syncasd.models.ensemble import (
    LipGatedLightASD,
    MelGatedLightASD,
    SyncGatedLightASD,
    TripleGatedLightASD,
    gate_curves,
    gate_evidence,
)
from syncasd.offsets import offset_backend
from syncasd.train import decision_shift

# The bundled gates' shapes, read from the models: light-syncnet's (the gate of
# `LipGatedLightASD` and its family until stop 42) and ic-syncnet's (the default's; the best
# shape of stop 40's validation screen).
GATES = (
    f"light-syncnet:{LipGatedLightASD.gate_slope}:{LipGatedLightASD.gate_centre}",
    f"ic-syncnet:{MelGatedLightASD.gate_slope}:{MelGatedLightASD.gate_centre}",
)


def ungated(model: TripleGatedLightASD) -> TripleGatedLightASD:
    """A copy of `model` (the default, whatever its gate) without its lip gate and bias: the
    halves' product alone. Built from the model's own class, so that its key tree and its
    audio input (`reads_mel`) are the default's."""

    class Ensemble(type(model)):
        decision_shift = 0.0

        def speaking_log_prob(self, video: torch.Tensor, mfcc: torch.Tensor) -> torch.Tensor:
            return SyncGatedLightASD.speaking_log_prob(self, video, mfcc)

    ensemble = Ensemble()
    ensemble.load_state_dict(model.state_dict())
    return ensemble


class EnsembleScorer:
    """The default's ensemble speaking probability, scored as `detect` scores and memoised
    per track (every gate multiplies the same ensemble)."""

    def __init__(self) -> None:
        self.score = asd_scorer(ungated(load_model(DEFAULT_MODEL)).eval())
        self.memo: dict[str, np.ndarray] = {}

    def __call__(self, crops: np.ndarray, audio: np.ndarray) -> np.ndarray:
        digest = hashlib.sha1(np.ascontiguousarray(audio).tobytes())
        digest.update(np.ascontiguousarray(crops).tobytes())
        key = digest.hexdigest()
        if key not in self.memo:
            self.memo[key] = np.clip(self.score(crops, audio), 1e-6, 1 - 1e-6)
        return self.memo[key]


class GatedScorer:
    """A track scorer: the ensemble's p × σ(slope (e − centre)), e the gate's evidence from
    `backend_name`'s curves over the whole track (`ensemble.gate_curves`, `gate_evidence`:
    the model's own arithmetic), then logit += `bias`."""

    def __init__(
        self, ensemble: EnsembleScorer, backend_name: str, slope: float, centre: float
    ) -> None:
        self.ensemble, self.slope, self.centre = ensemble, slope, centre
        self.backend = offset_backend(backend_name, audio_lag_ms=0)
        self.bias = 0.0

    def __call__(self, crops: np.ndarray, audio: np.ndarray) -> np.ndarray:
        p = self.ensemble(crops, audio)
        q = np.clip(self.backend(crops, audio).astype(np.float64), 1e-6, 1 - 1e-6)
        with torch.no_grad():
            curve = gate_curves(torch.from_numpy(logit(q))[None], torch.from_numpy(p)[None])
            e = gate_evidence(curve)[0].numpy()
        log_p = np.log(p) - np.logaddexp(0.0, -self.slope * (e - self.centre))
        return expit(log_p - np.log1p(-np.exp(log_p)) + self.bias)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument(
        "--gate", action="append", metavar="NAME:SLOPE:CENTRE", help=f"default: {GATES}"
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    tracks = material(3 if args.split == "test" else 10**6, args.split)
    labels = [t.labels for t in tracks]
    test = unsync.UnsyncTest(tracks, seed=SEED)
    dubbed_tracks, dubbed = dubbed_set(tracks, SEED)
    half = test.shares.index(50)
    ensemble = EnsembleScorer()
    rows = []
    for spec in args.gate or GATES:
        name, slope, centre = spec.split(":")
        scorer = GatedScorer(ensemble, name, float(slope), float(centre))
        uncalibrated = score_tracks(scorer, tracks)
        scorer.bias = decision_shift(np.concatenate(labels), np.concatenate(uncalibrated))
        original = [expit(logit(np.clip(x, 1e-12, 1 - 1e-12)) + scorer.bias) for x in uncalibrated]
        u = test.run(scorer, spec, original)
        auroc = dubbing.separation(dubbed_ranking(scorer, dubbed_tracks), dubbed)["auroc"]
        row = [spec, f"{scorer.bias:+.3f}", pooled_map(labels, original)]
        rows.append(row + [u.maps["mismatch"][half], u.maps["misalign"][half], auroc])
        print(rows[-1], flush=True)
    headers = ["gate", "bias", "original", "50 % mismatched", "50 % misaligned", "dubbed AUROC"]
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    main()
