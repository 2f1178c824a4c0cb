"""The VAD × lip-movement baseline: each half on real tracks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import DATA, needs_shared

from syncasd.evaluate.baselines import VadLipBaseline
from syncasd.models import load_model

WEIGHTS = DATA / "weights"


def test_needs_a_visual_head():
    with pytest.raises(ValueError, match="no visual-only head"):
        VadLipBaseline(torch.nn.Linear(1, 1))


@needs_shared
def test_visual_head_is_the_checkpoints_lossV(gray):
    model = load_model("lr-asd", weights=WEIGHTS / "lr_asd_ava.model")
    video = torch.from_numpy(gray[:50]).float()[None]
    with torch.inference_mode():
        logits = model.visual_logits(video)
        expected = model.lossV.FC(model.model.forward_visual_frontend(video))
    assert logits.shape == (1, 50, 2)
    torch.testing.assert_close(logits, expected)


@needs_shared
def test_each_half_on_real_tracks(eval_tracks):
    baseline = VadLipBaseline(load_model("light-asd", weights=WEIGHTS / "light_asd_ava.model"))
    by_id = {t.video_id: t for t in eval_tracks}
    speaking, silent = by_id["ID2/013"], by_id["liveportrait/d3"]
    lips = baseline.lip_probability(speaking.crops)
    assert lips.shape == (100,)
    torch_lips = VadLipBaseline(baseline.model, backend="torch")
    np.testing.assert_allclose(torch_lips.lip_probability(speaking.crops), lips, atol=1e-5)
    assert lips.mean() == pytest.approx(0.672, abs=0.02)  # measured
    both = baseline(silent.crops, silent.audio)  # the face moves; the audio is silent
    assert both.max() < 0.01
    assert baseline(speaking.crops, speaking.audio).mean() == pytest.approx(0.649, abs=0.02)
