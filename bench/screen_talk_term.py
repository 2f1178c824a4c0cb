"""Screen a candidate half of our gated models on the VALIDATION identities.

`sync-light-asd-gated` scores p = √(p_asd · p_sync) × a lip gate. A candidate attention model,
trained apart on its frozen AVA visual encoder (`light-talknet`, `light-talknet-band`;
`syncasd train light-talknet-band --config light-talknet-band`), joins it in one of two ways:

    --as sync:   log p = ½ (log p_asd + log p_talk) + log gate(p)             (TalkLipGatedLightASD)
    --as third:  log p = ⅓ (log p_asd + log p_sync + log p_talk) + log gate(p) (TripleGatedLightASD,
                 the default's composition)

or, a Light-ASD model in place of the default's own sync half (`sync.`, sync-light-asd's
stage 5; e.g. one more epoch on realigned tracks):

    --as default-sync: log p = ⅓ (log p_asd + log p_candidate + log p_talk) + log gate(p)

then logit p += shift, the shift calibrated from 0 on the validation frames as `syncasd train`
calibrates (Youden's J), and `bench/eval_suite.py --split val` scores it (original / 50 %
mismatched / 50 % misaligned mAP, dubbed AUROC, who-speaks, conversations). Judge its row
against the default's validation row by a rule written before running this (docs/results.md, "As a
term of the default").

    python bench/screen_talk_term.py runs/light-talknet-band/model.pt [--model light-talknet-band]
    python bench/screen_talk_term.py runs/light-talknet-band-lr2/model.pt --as third
    python bench/screen_talk_term.py runs/sync-realign/model.pt --as default-sync
    python bench/screen_talk_term.py runs/sync-realign/model.pt --as default-sync --split test
                                           # the chosen one, measured once on test
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import eval_suite  # noqa: E402

from syncasd.defaults import DEFAULT_MODEL  # noqa: E402
from syncasd.evaluate.tracks import asd_scorer, score_tracks  # noqa: E402
from syncasd.models import get_spec, load_model  # noqa: E402
from syncasd.models.ensemble import (  # noqa: E402
    LipGatedLightASD,
    TalkLipGatedLightASD,
    TripleGatedLightASD,
    check_shared_visual_encoder,
    compose,
)
from syncasd.models.zoo import load_state_dict  # noqa: E402
from syncasd.train import decision_shift  # noqa: E402

COMPOSITIONS = {"sync": TalkLipGatedLightASD, "third": TripleGatedLightASD}
DEFAULT_SYNC = "default-sync"  # the candidate is a Light-ASD in place of the default's `sync.`


def build(talk_model: str, weights: Path, composition: str = "sync") -> LipGatedLightASD:
    """`sync-light-asd-gated`'s parts with the attention model `talk_model` from `weights`
    joined as `composition` ("sync": in place of its sync half; "third": beside it)."""
    gated = load_model("sync-light-asd-gated").state_dict()
    talk_state = load_state_dict(weights)
    asd = {k[len("asd.") :]: v for k, v in gated.items() if k.startswith("asd.")}
    check_shared_visual_encoder(talk_state, asd, weights)
    talk = get_spec(talk_model).builder()
    talk.load_state_dict(talk_state)
    model = COMPOSITIONS[composition](talk)  # ties talk's visual encoder to asd's
    kept = ("asd.", "lips.") if composition == "sync" else ("asd.", "sync.", "lips.")
    missing, unexpected = model.load_state_dict(
        {k: v for k, v in gated.items() if k.startswith(kept)}, strict=False
    )
    if unexpected or any(k.startswith(kept) for k in missing):
        raise SystemExit(f"sync-light-asd-gated does not fit the {composition} composition")
    return model.eval()


def with_sync_half(weights: Path) -> LipGatedLightASD:
    """The default with its sync half (`sync.`, a Light-ASD) read from `weights`, which must
    share the AVA visual stem that the default runs once for all halves."""
    model = load_model(DEFAULT_MODEL)
    candidate = load_state_dict(weights)
    compose(model.asd.state_dict(), candidate)  # raises unless the stems are equal
    model.sync.load_state_dict(candidate)
    return model.eval()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path, help="the candidate's model.pt")
    parser.add_argument("--model", default="light-talknet-band", help="its registry name")
    parser.add_argument(
        "--as",
        dest="composition",
        choices=sorted(COMPOSITIONS) + [DEFAULT_SYNC],
        default="sync",
        help="in place of the sync half (sync) or beside it (third, as the default); "
        f"{DEFAULT_SYNC}: a Light-ASD in place of the default's sync half",
    )
    parser.add_argument(
        "--split",
        choices=("val", "test"),
        default="val",
        help="identities the suite scores (calibration is always on validation): test only "
        "to measure a chosen candidate once",
    )
    args = parser.parse_args()
    if args.composition == DEFAULT_SYNC:  # --model is the attention model's; here Light-ASD
        model, label = with_sync_half(args.weights), "light-asd"
    else:
        model, label = build(args.model, args.weights, args.composition), args.model
    tracks = eval_suite.material(10**6, "val")
    model.decision_shift = 0.0  # calibrate from the uncalibrated product, not a class's bias
    with torch.no_grad():
        scores = np.concatenate(score_tracks(asd_scorer(model), tracks))
    model.decision_shift = decision_shift(np.concatenate([t.labels for t in tracks]), scores)
    print(f"calibrated: logit shift {model.decision_shift:.3f}", flush=True)
    name = f"{label} as the {args.composition} half"
    return eval_suite.main(["--split", args.split, "--no-baseline"], candidates={name: model})


if __name__ == "__main__":
    sys.exit(main())
