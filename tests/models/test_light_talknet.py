"""TalkNet's attention backend on Light-ASD's encoders (light-talknet, light-sync-talknet):
key layout, what the positional encoding changes, and starting the encoders from Light-ASD."""

from __future__ import annotations

import pytest
import torch
from conftest import DATA, needs_shared

from syncasd.errors import WeightsError
from syncasd.models import get_spec, load_model
from syncasd.models.light_talknet import LightTalkNet
from syncasd.models.zoo import load_matching
from syncasd.train import TRAINABLE, TrainConfig

AVA = DATA / "weights" / "light_asd_ava.model"


def _embeddings(t: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, t, 128, generator=g), torch.randn(2, t, 128, generator=g)


def test_keys_are_light_asd_encoders_and_talknet_backend():
    keys = get_spec("light-talknet").builder().state_dict()
    light = get_spec("light-asd").builder().state_dict()
    encoders = {k for k in light if k.startswith(("model.visualEncoder", "model.audioEncoder"))}
    assert encoders <= set(keys)
    assert {k for k in light if k.startswith("model.GRU")}.isdisjoint(keys)
    for layer in ("crossA2V", "crossV2A", "selfAV"):
        assert f"model.{layer}.self_attn.in_proj_weight" in keys
    assert keys["model.selfAV.self_attn.in_proj_weight"].shape == (3 * 256, 256)
    assert keys["lossAV.FC.weight"].shape == (2, 256)
    assert keys["lossV.FC.weight"].shape == (2, 128)
    # The positional encoding has no parameters: both variants share one key tree.
    pe = get_spec("light-sync-talknet").builder().state_dict()
    assert {k: v.shape for k, v in pe.items()} == {k: v.shape for k, v in keys.items()}


def test_without_pe_the_backend_cannot_tell_frame_order():
    """Attention without positional encoding is permutation-equivariant in time: permuting
    the frames of both streams permutes the logits. The PE breaks that; it is what lets
    Sync-TalkNet's attention see where an audio frame lies against the lips."""
    torch.manual_seed(0)
    plain = LightTalkNet(positional_encoding=False).eval()
    pe = LightTalkNet(positional_encoding=True).eval()
    pe.load_state_dict(plain.state_dict())
    visual, audio = _embeddings()
    order = torch.randperm(visual.shape[1], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = plain.backend_logits(visual, audio)
        permuted = plain.backend_logits(visual[:, order], audio[:, order])
        assert torch.allclose(permuted, out[:, order], atol=1e-5)
        out_pe = pe.backend_logits(visual, audio)
        permuted_pe = pe.backend_logits(visual[:, order], audio[:, order])
    assert out_pe.shape == (2, 12, 2)
    assert not torch.allclose(out_pe, out, atol=1e-3)
    assert not torch.allclose(permuted_pe, out_pe[:, order], atol=1e-3)


def test_band_zero_attends_to_the_own_frame_only():
    """With band 0 each query sees one key, softmax weight 1, so the attention output is the
    value projection of the memory's own frame: out_proj(W_v · m_t + b_v)."""
    from syncasd.models.talknet import AttentionLayer

    torch.manual_seed(0)
    layer = AttentionLayer(16, 4, band=0).eval()
    query, memory = torch.randn(2, 7, 16), torch.randn(2, 7, 16)
    mha = layer.self_attn
    expected = mha.out_proj(memory @ mha.in_proj_weight[32:].T + mha.in_proj_bias[32:])
    with torch.no_grad():
        assert torch.allclose(layer.attend(query, memory), expected.detach(), atol=1e-5)


def test_band_limits_reach_and_is_a_no_op_on_short_windows():
    """±25 frames: a window of 26 frames or fewer is attended to whole, as without a band; on
    a longer window a frame's output ignores frames more than 25 away (and only those)."""
    torch.manual_seed(0)
    plain = get_spec("light-talknet").builder().eval()
    band = get_spec("light-talknet-band").builder().eval()
    band.load_state_dict(plain.state_dict())
    visual, audio = _embeddings(t=26)
    with torch.no_grad():
        assert torch.allclose(
            band.backend_logits(visual, audio), plain.backend_logits(visual, audio), atol=1e-5
        )
        visual, audio = _embeddings(t=80)
        out = band.backend_logits(visual, audio)
        far = visual.clone()
        far[:, 60:] = torch.randn_like(far[:, 60:])  # > 25 frames from 0…9 after two layers
        changed = band.backend_logits(far, audio)
        assert not torch.allclose(out, plain.backend_logits(visual, audio), atol=1e-3)
    # Two stacked attentions reach ±50: frames 0–9 cannot see 60 onwards.
    assert torch.allclose(changed[:, :10], out[:, :10], atol=1e-5)
    assert not torch.allclose(changed[:, 10:40], out[:, 10:40], atol=1e-3)


def test_frame_logits_shapes_and_lengths():
    model = get_spec("light-sync-talknet").builder().eval()
    with torch.no_grad():
        logits = model.frame_logits(torch.rand(1, 9, 112, 112) * 255, torch.randn(1, 36, 13))
    assert logits.shape == (1, 9, 2)
    assert torch.isfinite(logits).all()


def test_both_variants_are_trainable_and_have_shipped_configs():
    assert {"light-talknet", "light-talknet-band", "light-sync-talknet"} <= set(TRAINABLE)
    banded = TrainConfig.load("light-talknet-band")
    assert banded.model == "light-talknet-band" and banded.freeze == ["visual"]
    assert (banded.loss.beta, banded.loss.misalign_beta) == (1.0, 1.0)
    pe = TrainConfig.load("light-sync-talknet")
    control = TrainConfig.load("light-talknet")
    assert (pe.model, control.model) == ("light-sync-talknet", "light-talknet")
    assert pe.init_partial and control.init_partial
    assert pe.loss.beta == 1.0 and control.loss.beta == 0.0
    # The control differs in the model and the contrastive loss only.
    assert pe.samples == control.samples and pe.optim == control.optim
    assert pe.epochs == control.epochs and pe.freeze == control.freeze


def test_no_published_weights():
    with pytest.raises(WeightsError):
        load_model("light-talknet")


@needs_shared
def test_encoders_start_from_light_asd():
    model = LightTalkNet(positional_encoding=True)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    loaded, left = load_matching(model, AVA)
    light = load_model("light-asd", weights=AVA)
    encoder_keys = [
        k for k in light.state_dict() if k.startswith(("model.visualEncoder", "model.audioEncoder"))
    ]
    # Encoders and the visual head come from the checkpoint; the attention backend and the
    # 256-wide speaking head stay fresh.
    assert loaded == len(encoder_keys) + 2  # + lossV.FC weight and bias
    assert left == len(fresh) - loaded
    state = model.state_dict()
    assert torch.equal(state["lossAV.FC.weight"], fresh["lossAV.FC.weight"])
    model.eval()
    crops = torch.rand(1, 10, 112, 112) * 255
    mfcc = torch.randn(1, 40, 13)
    with torch.no_grad():
        assert torch.allclose(model.visual_embeddings(crops), light.visual_embeddings(crops))
        assert torch.allclose(model.audio_embeddings(mfcc), light.audio_embeddings(mfcc))


def test_load_matching_refuses_a_checkpoint_that_fits_nothing(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"something.else": torch.zeros(3)}, path)
    with pytest.raises(WeightsError, match="no tensor of it fits"):
        load_matching(LightTalkNet(), path)
