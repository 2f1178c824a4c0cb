"""LightSyncNet: Light-ASD's encoders as a sync-net with per-frame embeddings."""

import math

import pytest
import torch
from conftest import DATA, needs_shared

from syncasd.models import load_model
from syncasd.models.light_syncnet import MOUTH_TOP, LightSyncNet
from syncasd.models.zoo import load_matching


@pytest.fixture(scope="module")
def model() -> LightSyncNet:
    torch.manual_seed(0)
    return LightSyncNet().eval()


def test_embeddings_are_per_frame_unit_vectors(model):
    crops = torch.rand(2, 9, 112, 112) * 255
    mfcc = torch.randn(2, 4 * 13, 13)
    with torch.no_grad():
        v, a = model.visual_embeddings(crops), model.audio_embeddings(mfcc)
    assert v.shape == (2, 9, 128) and a.shape == (2, 13, 128)
    assert torch.allclose(v.norm(dim=-1), torch.ones(2, 9), atol=1e-5)
    assert torch.allclose(a.norm(dim=-1), torch.ones(2, 13), atol=1e-5)
    assert math.isclose(model.temperature.item(), 0.07, rel_tol=1e-6)


def test_only_the_lower_half_of_the_crop_is_read(model):
    crops = torch.rand(1, 6, 112, 112) * 255
    other = crops.clone()
    other[:, :, :MOUTH_TOP] = 255 - other[:, :, :MOUTH_TOP]
    with torch.no_grad():
        assert torch.equal(model.visual_embeddings(crops), model.visual_embeddings(other))
        other[:, :, MOUTH_TOP:] += 10
        assert not torch.allclose(model.visual_embeddings(crops), model.visual_embeddings(other))


def test_offset_logits_are_cosines_over_temperature_at_each_offset(model):
    torch.manual_seed(1)
    v = torch.nn.functional.normalize(torch.randn(2, 5, 128), dim=-1)
    a = torch.nn.functional.normalize(torch.randn(2, 5 + 2 * 3, 128), dim=-1)
    logits = model.offset_logits(v, a)
    assert logits.shape == (2, 7, 5)
    tau = model.temperature.item()
    for b, k, t in [(0, -3, 0), (1, 0, 4), (0, 3, 2), (1, -1, 1)]:
        expected = float(v[b, t] @ a[b, t + 3 + k]) / tau
        assert logits[b, k + 3, t].item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="must cover"):
        model.offset_logits(v, a[:, :8])


@needs_shared
def test_light_asd_encoders_load_into_it_and_the_heads_start_fresh():
    fresh = LightSyncNet()
    loaded, left = load_matching(fresh, DATA / "weights" / "light_asd_ava.model")
    ava = load_model("light-asd", weights=DATA / "weights" / "light_asd_ava.model").state_dict()
    state = fresh.state_dict()
    encoders = [k for k in state if k.startswith("model.")]
    assert loaded == len(encoders) and all(torch.equal(state[k], ava[k]) for k in encoders)
    # The two heads (conv, BatchNorm's 5 tensors, projection's 2) and the temperature.
    assert left == 2 * (1 + 5 + 2) + 1
