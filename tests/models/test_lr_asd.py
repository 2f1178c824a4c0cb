"""LR-ASD with the real checkpoints against outputs of the official code (fixtures/lrasd),
its registry entry, and the ONNX Runtime twin."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from conftest import DATA, FIXTURES, MemoModel, needs_shared

from syncasd.errors import WeightsError
from syncasd.models import get_spec, load_model
from syncasd.models.lr_asd import LRASD
from syncasd.models.onnx import OrtModel, export_onnx
from syncasd.scoring import demo_scores

pytestmark = needs_shared

WEIGHTS = DATA / "weights"
AVA = WEIGHTS / "lr_asd_ava.model"
TALKSET = WEIGHTS / "lr_asd_talkset.model"
REF = FIXTURES / "lrasd"
INPUTS = FIXTURES / "inputs"


@pytest.fixture(scope="module")
def lr_asd() -> MemoModel:
    """LR-ASD with the AVA weights, in the exact-input memo (the demo tracks share chunks)."""
    return MemoModel(load_model("lr-asd", weights=AVA))


@pytest.fixture(scope="module")
def model(lr_asd):
    return lr_asd.inner


@pytest.fixture(scope="module")
def reference() -> dict:
    return torch.load(REF / "lrasd_outputs_fp32.pt", weights_only=True)


def _inputs(gray: np.ndarray, mfcc: np.ndarray, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fed exactly as the original demo feeds them: float32, batch 1."""
    video = torch.FloatTensor(gray[:frames]).unsqueeze(0)
    audio = torch.FloatTensor(mfcc[: 4 * frames]).unsqueeze(0)
    return video, audio


@pytest.fixture(scope="module")
def outputs(model, gray, mfcc_full) -> dict:
    """One T=100 pass through every stage the fixture records."""
    video, audio = _inputs(gray, mfcc_full, 100)
    m = model.model
    with torch.no_grad():
        audio_embed = m.forward_audio_frontend(audio)
        visual_embed = m.forward_visual_frontend(video)
        fusion_out = m.fusion(audio_embed, visual_embed)
        return {
            "audio_embed": audio_embed,
            "visual_embed": visual_embed,
            "fusion_out": fusion_out,
            "detector_out": m.detector(fusion_out),
            "logits_v": model.lossV(visual_embed)[0],
            "logits": model.frame_logits(video, audio),
            "probs": model.predict(video, audio),
        }


# --- forward pass against the official module ------------------------------------------------


@pytest.mark.parametrize(
    ("key", "shape"),
    [
        ("audio_embed", (1, 100, 128)),
        ("visual_embed", (1, 100, 128)),
        ("fusion_out", (1, 100, 256)),
        ("detector_out", (1, 100, 128)),
        ("logits_v", (100, 2)),
    ],
)
def test_intermediate_outputs(outputs, reference, key, shape):
    assert outputs[key].shape == shape
    scale = reference[key].abs().max().item()
    torch.testing.assert_close(outputs[key], reference[key], atol=1e-4 * max(scale, 1.0), rtol=0)


def test_frame_logits(outputs, reference):
    assert outputs["logits"].shape == (1, 100, 2)
    torch.testing.assert_close(outputs["logits"][0], reference["logits_av"], atol=1e-4, rtol=0)


def test_predict(outputs, reference):
    assert outputs["probs"].shape == (1, 100)
    expected = reference["softmax_av"][:, 1]
    torch.testing.assert_close(outputs["probs"][0], expected, atol=1e-5, rtol=0)


def test_forward_is_frame_logits(model, gray, mfcc_full):
    video, audio = _inputs(gray, mfcc_full, 25)
    with torch.no_grad():
        assert torch.equal(model(video, audio), model.frame_logits(video, audio))


# --- the demo's multi-duration scores ---------------------------------------------------------


@pytest.mark.parametrize("track", ["track_T100", "trackcut_T100", "full_clip"])
def test_demo_scores(lr_asd, gray, mfcc_full, track):
    video, mfcc = {
        "track_T100": (gray[:100], mfcc_full[:400]),
        "trackcut_T100": (gray[:100], np.load(INPUTS / "clip014_mfcc_trackcut64000.npy")),
        "full_clip": (gray, mfcc_full),
    }[track]
    expected = torch.load(REF / "lrasd_demo_scores.pt", weights_only=True)[track]
    expected = expected["scores_rounded"].numpy()
    summary = json.loads((REF / "lrasd_summary.json").read_text())["demo"][track]
    near_boundary = summary["frames_whose_unrounded_mean_is_within_1e-4_of_a_rounding_boundary"]

    scores = demo_scores(lr_asd, video, mfcc)

    assert scores.dtype == np.float64
    assert scores.shape == expected.shape  # trackcut_T100: 99, the last frame is not scored
    diff = np.abs(scores - expected)
    allowed = np.full(len(expected), 1e-6)
    allowed[near_boundary] = 0.1 + 1e-6  # a rounding flip is legitimate only there
    bad = np.flatnonzero(diff > allowed)
    assert bad.size == 0, f"frames {bad.tolist()} differ: {scores[bad]} vs {expected[bad]}"


# --- zoo: weights and errors ------------------------------------------------------------------


def test_talkset_weights_load_strictly(model):
    state = torch.load(TALKSET, map_location="cpu", weights_only=True)
    LRASD().load_state_dict(state, strict=True)
    talkset = load_model("lr-asd", weights=TALKSET)
    assert not talkset.training
    a, b = model.state_dict(), talkset.state_dict()
    assert a.keys() == b.keys() == state.keys()
    assert not torch.equal(a["lossAV.FC.weight"], b["lossAV.FC.weight"])


def test_light_asd_checkpoint_is_rejected():
    with pytest.raises(WeightsError, match=r"missing.*unexpected"):
        load_model("lr-asd", weights=WEIGHTS / "light_asd_ava.model")


@pytest.mark.parametrize(("tag", "path"), [("ava", AVA), ("talkset", TALKSET)])
def test_registry_entry(tag, path):
    spec = get_spec("lr-asd")
    assert spec.default_checkpoint == "ava"
    assert spec.builder is LRASD
    ckpt = spec.checkpoints[tag]
    assert ckpt.filename == path.name
    assert ckpt.url.startswith("https://github.com/Junhua-Liao/LR-ASD/raw/main/weight/")
    assert ckpt.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


# --- ONNX Runtime ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ort_model(model, tmp_path_factory) -> OrtModel:
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "lr-asd.onnx")
    return OrtModel(path)


@pytest.mark.parametrize("frames", [100, 37])
def test_onnx_matches_torch(model, ort_model, gray, mfcc_full, frames):
    video, audio = _inputs(gray, mfcc_full, frames)
    with torch.no_grad():
        expected = model.frame_logits(video, audio)
    got = ort_model.frame_logits(video, audio)
    assert got.shape == (1, frames, 2)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
