"""Light-ASD with the real checkpoints against outputs of the official code (fixtures/lightasd),
and the model zoo's loading and error paths."""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.request

import numpy as np
import pytest
import torch
from conftest import DATA, FIXTURES, needs_shared

from syncasd.errors import WeightsError
from syncasd.models import get_spec, load_model
from syncasd.models.zoo import cache_dir
from syncasd.scoring import demo_scores

pytestmark = needs_shared

WEIGHTS = DATA / "weights"
AVA = WEIGHTS / "light_asd_ava.model"
REF = FIXTURES / "lightasd"
INPUTS = FIXTURES / "inputs"


@pytest.fixture(scope="module")
def model(light_asd):
    """The plain LightASD module (conftest's `light_asd` wraps it in an exact-input memo)."""
    return light_asd.inner


@pytest.fixture(scope="module")
def reference() -> dict:
    return torch.load(REF / "lightasd_outputs_fp32.pt", weights_only=True)


@pytest.fixture(scope="module")
def outputs(model, gray, mfcc_full) -> dict:
    """One T=100 pass, fed exactly as the original demo feeds it (float32, batch 1)."""
    video = torch.FloatTensor(gray[:100]).unsqueeze(0)
    audio = torch.FloatTensor(mfcc_full[:400]).unsqueeze(0)
    with torch.no_grad():
        return {
            "audio_embed": model.model.forward_audio_frontend(audio),
            "visual_embed": model.model.forward_visual_frontend(video),
            "logits": model.frame_logits(video, audio),
            "probs": model.predict(video, audio),
        }


# --- forward pass against the official module ------------------------------------------------


@pytest.mark.parametrize("key", ["audio_embed", "visual_embed"])
def test_embeddings(outputs, reference, key):
    assert outputs[key].shape == (1, 100, 128)
    torch.testing.assert_close(outputs[key], reference[key], atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["light-asd", "lr-asd"])
def test_visual_stem_then_head_is_the_visual_encoder(name, gray):
    """Training may cache the first two blocks' maps: stem → head must be the encoder, exactly."""
    model = load_model(name, weights=DATA / "weights" / f"{name.replace('-', '_')}_ava.model")
    video = torch.FloatTensor(gray[:30]).unsqueeze(0)
    with torch.no_grad():
        stem = model.visual_stem(video)
        assert stem.shape == (1, 30, 64 * 14 * 14)
        assert torch.equal(model.visual_from_stem(stem), model.visual_embeddings(video))


def test_frame_logits(outputs, reference):
    assert outputs["logits"].shape == (1, 100, 2)
    torch.testing.assert_close(outputs["logits"][0], reference["logits_av"], atol=1e-4, rtol=0)


def test_predict(outputs, reference):
    assert outputs["probs"].shape == (1, 100)
    expected = reference["softmax_av"][:, 1]
    torch.testing.assert_close(outputs["probs"][0], expected, atol=1e-5, rtol=0)


# --- the demo's multi-duration scores ---------------------------------------------------------


@pytest.mark.parametrize("track", ["track_T100", "trackcut_T100", "full_clip"])
def test_demo_scores(light_asd, gray, mfcc_full, track):
    video, mfcc = {
        "track_T100": (gray[:100], mfcc_full[:400]),
        "trackcut_T100": (gray[:100], np.load(INPUTS / "clip014_mfcc_trackcut64000.npy")),
        "full_clip": (gray, mfcc_full),
    }[track]
    expected = torch.load(REF / "lightasd_demo_scores.pt", weights_only=True)[track]
    expected = expected["scores_rounded"].numpy()
    summary = json.loads((REF / "lightasd_summary.json").read_text())["demo"][track]
    near_boundary = summary["frames_whose_unrounded_mean_is_within_1e-4_of_a_rounding_boundary"]

    # The memo spares re-running chunks shared by the three tracks (e.g. the first 1-s chunks).
    scores = demo_scores(light_asd, video, mfcc)

    assert scores.dtype == np.float64
    assert scores.shape == expected.shape  # trackcut_T100: 99, the last frame is not scored
    diff = np.abs(scores - expected)
    allowed = np.full(len(expected), 1e-6)
    allowed[near_boundary] = 0.1 + 1e-6  # a rounding flip is legitimate only there
    bad = np.flatnonzero(diff > allowed)
    assert bad.size == 0, f"frames {bad.tolist()} differ: {scores[bad]} vs {expected[bad]}"


# --- zoo: weights, errors, cache --------------------------------------------------------------


def test_talkset_weights_load(model):
    talkset = load_model("light-asd", weights=WEIGHTS / "light_asd_talkset.model")
    assert not talkset.training
    a, b = model.state_dict(), talkset.state_dict()
    assert a.keys() == b.keys()
    assert not torch.equal(a["lossAV.FC.weight"], b["lossAV.FC.weight"])


def test_wrong_architecture_checkpoint():
    with pytest.raises(WeightsError, match=r"missing.*unexpected"):
        load_model("light-asd", weights=WEIGHTS / "lr_asd_ava.model")


def test_text_file_as_weights(tmp_path):
    path = tmp_path / "weights.model"
    path.write_text("not a checkpoint\n")
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
        load_model("light-asd", weights=path)


def test_unknown_model_name():
    with pytest.raises(WeightsError, match="unknown model"):
        load_model("no-such-model", weights=AVA)


def test_registry_sha256_matches_shared_file():
    assert (
        get_spec("light-asd").checkpoints["ava"].sha256
        == hashlib.sha256(AVA.read_bytes()).hexdigest()
    )


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """An empty checkpoint cache on a machine without network."""

    def no_network(*args, **kwargs):
        raise OSError("network is unreachable (test)")

    monkeypatch.setenv("SYNCASD_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    return tmp_path / "cache"


def test_offline_without_cached_weights(offline_cache):
    filename = get_spec("light-asd").checkpoints["ava"].filename
    with pytest.raises(WeightsError) as info:
        load_model("light-asd")
    message = str(info.value)
    assert filename in message
    assert str(offline_cache / filename) in message
    assert not list(offline_cache.glob("*.part"))  # no half-written download left behind


def test_offline_with_cached_weights(offline_cache, model):
    assert cache_dir() == offline_cache
    offline_cache.mkdir()
    shutil.copy(AVA, offline_cache / get_spec("light-asd").checkpoints["ava"].filename)
    cached = load_model("light-asd")
    assert not cached.training
    for key, value in model.state_dict().items():
        assert torch.equal(cached.state_dict()[key], value), key
