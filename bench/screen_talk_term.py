"""Screen an attention model as a term of the default, on the VALIDATION identities.

The default (`sync-light-asd-gated`) scores p = √(p_asd · p_sync) × a lip gate. A candidate
here swaps its sync half for an attention model trained apart on the default's frozen AVA
visual encoder (`light-talknet`, `light-talknet-band`; `syncasd train light-talknet-band
--config light-talknet-band`):

    log p = ½ (log p_asd + log p_talk) + log gate(p),   then logit p += shift,

the shift calibrated on the validation frames as `syncasd train` calibrates (Youden's J), then
`bench/eval_suite.py --split val` scores it (original / 50 % mismatched / 50 % misaligned mAP,
dubbed AUROC, who-speaks, conversations). Judge its row against the default's validation row
by a rule written before running this (README, "As a term of the default").

    python bench/screen_talk_term.py runs/light-talknet-band/model.pt [--model light-talknet-band]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).parent))
import eval_suite  # noqa: E402

from syncasd.evaluate.tracks import asd_scorer, score_tracks  # noqa: E402
from syncasd.models import get_spec, load_model  # noqa: E402
from syncasd.models.ensemble import GATE_CENTRE, GATE_SLOPE, LipGatedLightASD  # noqa: E402
from syncasd.models.zoo import load_state_dict  # noqa: E402
from syncasd.train import decision_shift  # noqa: E402


class TalkTermLightASD(LipGatedLightASD):
    """The default with its sync half replaced by an attention model (`talk`) whose visual
    encoder is `asd`'s, so the visual embeddings are computed once for both."""

    def __init__(self, talk_model: str) -> None:
        super().__init__()
        self.talk = get_spec(talk_model).builder()

    def speaking_log_prob(self, video: torch.Tensor, mfcc: torch.Tensor) -> torch.Tensor:
        visual = self.asd.visual_from_maps(self.asd.visual_maps(video))
        asd = self.asd.backend_logits(visual, self.asd.audio_embeddings(mfcc))
        talk = self.talk.backend_logits(visual, self.talk.audio_embeddings(mfcc))
        log_p = 0.5 * (asd.log_softmax(-1)[..., 1] + talk.log_softmax(-1)[..., 1])
        evidence = self.sync_evidence(video, mfcc, log_p.exp())
        return log_p + F.logsigmoid(GATE_SLOPE * (evidence - GATE_CENTRE))


def build(talk_model: str, weights: Path) -> TalkTermLightASD:
    model = TalkTermLightASD(talk_model)
    model.load_state_dict(load_model("sync-light-asd-gated").state_dict(), strict=False)
    model.talk.load_state_dict(load_state_dict(weights))
    asd = model.asd.state_dict()
    for key, value in model.talk.state_dict().items():
        if "visualEncoder" in key and not torch.equal(value, asd[key]):
            raise SystemExit(f"{weights}: its visual encoder is not the default's ({key})")
    return model.eval()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path, help="the attention model's model.pt")
    parser.add_argument("--model", default="light-talknet-band", help="its registry name")
    args = parser.parse_args()
    model = build(args.model, args.weights)
    tracks = eval_suite.material(10**6, "val")
    model.decision_shift = 0.0  # calibrate from the uncalibrated product, not the default's bias
    with torch.no_grad():
        scores = np.concatenate(score_tracks(asd_scorer(model), tracks))
    model.decision_shift = decision_shift(np.concatenate([t.labels for t in tracks]), scores)
    print(f"calibrated: logit shift {model.decision_shift:.3f}", flush=True)
    name = f"default, sync half → {args.model}"
    return eval_suite.main(["--split", "val", "--no-baseline"], candidates={name: model})


if __name__ == "__main__":
    sys.exit(main())
