"""TalkNet and Sync-TalkNet against outputs of the official TalkNet code (fixtures/talknet).

The fixtures were made with procedurally generated random weights (fixtures README §3): the
state dict is rebuilt here from its manifest, once per module (~63 MB in memory).
"""

from __future__ import annotations

import json
import math
import urllib.request

import numpy as np
import pytest
import torch
from conftest import DATA, FIXTURES, MemoModel, needs_shared, random_state_dict

from syncasd.errors import WeightsError
from syncasd.models import download, get_spec, load_model
from syncasd.models.onnx import OrtModel, export_onnx
from syncasd.models.talknet import PositionalEncoding, SyncTalkNet, TalkNet
from syncasd.scoring import demo_scores

pytestmark = needs_shared

REF = FIXTURES / "talknet"
INPUTS = FIXTURES / "inputs"


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    """The random-weight TalkNet checkpoint (487 tensors, each checked against its sha256)."""
    return random_state_dict(REF / "talknet_random_manifest.json")


@pytest.fixture(scope="module")
def model(state) -> TalkNet:
    talknet = TalkNet()
    talknet.load_state_dict(state, strict=True)
    return talknet.eval()


@pytest.fixture(scope="module")
def reference() -> dict:
    return torch.load(REF / "talknet_outputs_fp32.pt", weights_only=True)


@pytest.fixture(scope="module")
def inputs(gray, mfcc_full) -> tuple[torch.Tensor, torch.Tensor]:
    """The T=100 clip, cast exactly as the demo casts it: (1,100,112,112) and (1,400,13)."""
    return torch.FloatTensor(gray[:100]).unsqueeze(0), torch.FloatTensor(mfcc_full[:400]).unsqueeze(
        0
    )


@pytest.fixture(scope="module")
def outputs(model, inputs) -> dict[str, torch.Tensor]:
    """One T=100 pass through the original's intermediate methods, in the demo's order."""
    video, audio = inputs
    m = model.model
    with torch.no_grad():
        audio_embed = m.forward_audio_frontend(audio)
        visual_embed = m.forward_visual_frontend(video)
        audio_cross, visual_cross = m.forward_cross_attention(audio_embed, visual_embed)
        av = m.forward_audio_visual_backend(audio_cross, visual_cross)
        return {
            "audio_embed": audio_embed,
            "visual_embed": visual_embed,
            "audio_cross": audio_cross,
            "visual_cross": visual_cross,
            "av_selfattn": av,
            "logits_av": model.lossAV(av),
            "logits_a": model.lossA(m.forward_audio_backend(audio_cross)),
            "logits_v": model.lossV(m.forward_visual_backend(visual_cross)),
            "frame_logits": model.frame_logits(video, audio),
        }


def _small_clip(frames: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    video = torch.rand(1, frames, 112, 112, generator=g) * 255
    mfcc = torch.randn(1, 4 * frames, 13, generator=g) * 10
    return video, mfcc


# --- checkpoint key tree ----------------------------------------------------------------------


def test_state_dict_matches_checkpoint_tree(model, state):
    assert list(model.state_dict()) == list(state)  # same keys, in the original's order
    assert len(state) == 487
    n_backbone = sum(p.numel() for p in model.model.parameters())
    assert n_backbone == 15_743_451
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


# --- forward pass against the official module ------------------------------------------------


@pytest.mark.parametrize(
    "key", ["audio_embed", "visual_embed", "audio_cross", "visual_cross", "av_selfattn"]
)
def test_intermediate_outputs(outputs, reference, key):
    expected = reference[key]
    assert outputs[key].shape == expected.shape
    # README §10: embeddings match to ~1e-4 relative to their absmax (audio absmax is 81).
    atol = 1e-4 * max(1.0, expected.abs().max().item())
    torch.testing.assert_close(outputs[key], expected, atol=atol, rtol=0)


@pytest.mark.parametrize("key", ["logits_av", "logits_a", "logits_v"])
def test_logits(outputs, reference, key):
    assert outputs[key].shape == (100, 2)
    torch.testing.assert_close(outputs[key], reference[key], atol=1e-4, rtol=0)


def test_npy_copies_agree(outputs):
    np.testing.assert_allclose(
        outputs["logits_av"][:, 1].numpy(),
        np.load(REF / "talknet_class1_logits_T100.npy"),
        atol=1e-4,
    )
    for key in ("audio_embed", "visual_embed"):
        expected = np.load(REF / f"talknet_{key}_T100.npy")
        atol = 1e-4 * np.abs(expected).max()
        np.testing.assert_allclose(outputs[key].numpy(), expected, atol=atol, rtol=0)


def test_frame_logits(outputs, reference):
    assert outputs["frame_logits"].shape == (1, 100, 2)
    torch.testing.assert_close(
        outputs["frame_logits"][0], reference["logits_av"], atol=1e-4, rtol=0
    )
    probs = torch.softmax(outputs["frame_logits"], dim=-1)[..., 1]
    torch.testing.assert_close(probs[0], reference["softmax_av"][:, 1], atol=1e-5, rtol=0)


def test_predict(model, inputs):
    video, mfcc = inputs[0][:, :10], inputs[1][:, :40]
    probs = model.predict(video, mfcc)
    assert probs.shape == (1, 10) and not probs.requires_grad
    with torch.no_grad():
        expected = model.frame_logits(video, mfcc).softmax(dim=-1)[..., 1]
    torch.testing.assert_close(probs, expected)


def test_batches_do_not_mix_clips(model):
    """frame_logits scores each clip of a batch as if alone; the original's visual front end
    (kept as `forward_visual_frontend`) runs the batch as one long sequence instead."""
    (v1, a1), (v2, a2) = _small_clip(8, seed=1), _small_clip(8, seed=2)
    video, mfcc = torch.cat((v1, v2)), torch.cat((a1, a2))
    with torch.no_grad():
        batch = model.frame_logits(video, mfcc)
        alone = torch.cat((model.frame_logits(v1, a1), model.frame_logits(v2, a2)))
        torch.testing.assert_close(batch, alone, atol=1e-5, rtol=0)
        original = model.model.forward_visual_frontend(video)
        per_clip = model.model.encode_visual(video)
        # The original equals one clip of 16 frames, whose 5-frame kernel crosses the seam.
        joined = model.model.visualFrontend(
            model.model._normalise(video).reshape(1, 1, 16, 112, 112)
        ).reshape(2, 8, 512)
        torch.testing.assert_close(original, model.model._visual_temporal(joined))
        assert not torch.allclose(original, per_clip, atol=1e-4)


# --- the demo's multi-duration scores ----------------------------------------------------------


@pytest.fixture(scope="module")
def ort_model(model, tmp_path_factory) -> OrtModel:
    return OrtModel(export_onnx(model, tmp_path_factory.mktemp("onnx") / "talknet.onnx"))


@pytest.fixture(scope="module")
def demo_model(ort_model) -> MemoModel:
    """The ONNX twin (3× faster than torch on this CPU; `test_onnx_parity` ties it to torch)
    behind an exact-input memo, so chunks shared by the three tracks run once."""
    memo = MemoModel(ort_model)
    memo.device = torch.device("cpu")
    return memo


@pytest.mark.parametrize("track", ["track_T100", "trackcut_T100", "full_clip"])
def test_demo_scores(demo_model, gray, mfcc_full, track):
    video, mfcc = {
        "track_T100": (gray[:100], mfcc_full[:400]),
        "trackcut_T100": (gray[:100], np.load(INPUTS / "clip014_mfcc_trackcut64000.npy")),
        "full_clip": (gray, mfcc_full),
    }[track]
    expected = torch.load(REF / "talknet_demo_scores.pt", weights_only=True)[track]
    summary = json.loads((REF / "talknet_summary.json").read_text())["demo"][track]
    near_boundary = summary["frames_whose_unrounded_mean_is_within_1e-4_of_a_rounding_boundary"]
    rounded = expected["scores_rounded"].numpy()
    np.testing.assert_array_equal(rounded, np.load(REF / f"talknet_demo_scores_{track}.npy"))

    scores = demo_scores(demo_model, video, mfcc)

    assert scores.dtype == np.float64
    assert scores.shape == rounded.shape  # trackcut_T100: 99, the last frame is not scored
    diff = np.abs(scores - rounded)
    allowed = np.full(len(rounded), 1e-6)
    allowed[near_boundary] = 0.1 + 1e-6  # a rounding flip is legitimate only there
    bad = np.flatnonzero(diff > allowed)
    assert bad.size == 0, f"frames {bad.tolist()} differ: {scores[bad]} vs {rounded[bad]}"


def test_demo_mean_unrounded(demo_model, gray, mfcc_full):
    """The unrounded multi-duration mean of the whole clip (memo hits from test_demo_scores)."""
    from syncasd.scoring import DEMO_DURATIONS, run_model

    expected = torch.load(REF / "talknet_demo_scores.pt", weights_only=True)["full_clip"]
    length = min((len(mfcc_full) - len(mfcc_full) % 4) / 100, len(gray) / 25)
    per_duration = []
    for d in DEMO_DURATIONS:
        chunks = [
            run_model(
                demo_model,
                gray[i * d * 25 : (i + 1) * d * 25],
                mfcc_full[i * d * 100 : (i + 1) * d * 100],
            )[:, 1]
            for i in range(math.ceil(length / d))
        ]
        per_duration.append(np.concatenate(chunks))
        np.testing.assert_allclose(
            per_duration[-1], expected["per_duration"][d].numpy(), atol=1e-4, rtol=0
        )
    mean = np.mean(np.array(per_duration), axis=0)
    np.testing.assert_allclose(mean, expected["mean_unrounded"].numpy(), atol=1e-4, rtol=0)


# --- ONNX -------------------------------------------------------------------------------------


def test_onnx_parity(model, ort_model, outputs, inputs):
    # T=100 (the real clip) against the fixture pass's torch logits, then a second length.
    got = ort_model.frame_logits(*inputs)
    torch.testing.assert_close(got, outputs["frame_logits"], atol=1e-4, rtol=0)
    video, mfcc = _small_clip(37, seed=3)
    with torch.no_grad():
        expected = model.frame_logits(video, mfcc)
    got = ort_model.frame_logits(video, mfcc)
    assert got.shape == (1, 37, 2)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_onnx_export_to_tmp_path(tmp_path):
    """Sync-TalkNet exports too (its positional encoding keeps the length dynamic)."""
    sync = SyncTalkNet().eval()
    path = export_onnx(sync, tmp_path / "sync.onnx", frames=20)
    video, mfcc = _small_clip(30, seed=4)
    with torch.no_grad():
        expected = sync.frame_logits(video, mfcc)
    torch.testing.assert_close(
        OrtModel(path).frame_logits(video, mfcc), expected, atol=1e-4, rtol=0
    )


# --- Sync-TalkNet -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip10(inputs) -> tuple[torch.Tensor, torch.Tensor]:
    video, mfcc = inputs
    return video[:, :10], mfcc[:, :40]


def _sync(state, **flags) -> SyncTalkNet:
    sync = SyncTalkNet(**flags)
    sync.load_state_dict(state, strict=True)
    return sync.eval()


def test_sync_talknet_has_talknet_parameters(model, state):
    sync = _sync(state)
    assert list(sync.state_dict()) == list(model.state_dict())


def test_sync_talknet_without_pe_is_talknet(model, state, clip10):
    sync = _sync(state, cross_pe=False, self_pe=False)
    with torch.no_grad():
        assert torch.equal(sync.frame_logits(*clip10), model.frame_logits(*clip10))


def test_sync_talknet_pe_changes_outputs(model, state, clip10):
    with torch.no_grad():
        base = model.frame_logits(*clip10)
        results = {
            flags: _sync(state, cross_pe=flags[0], self_pe=flags[1]).frame_logits(*clip10)
            for flags in [(True, True), (True, False), (False, True)]
        }
    for flags, logits in results.items():
        assert logits.shape == base.shape
        assert (logits - base).abs().max() > 1e-2, flags
    assert (results[True, False] - results[False, True]).abs().max() > 1e-2


def test_positional_encoding_table():
    pe = PositionalEncoding(128).table(200)
    assert pe.shape == (200, 128) and pe.dtype == torch.float32
    assert pe[0, 0] == 0 and pe[0, 1] == 1  # sin(0), cos(0)
    assert pe[1, 0].item() == pytest.approx(math.sin(1), abs=1e-7)
    assert pe[1, 1].item() == pytest.approx(math.cos(1), abs=1e-7)
    for d_model in (128, 256):
        table = PositionalEncoding(d_model).table(200)
        for pos in (1, 7, 60, 199):
            for i in (0, 1, 5, d_model // 2 - 1):
                angle = pos / 10000 ** (2 * i / d_model)
                assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=2e-5)
                assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=2e-5)


def test_positional_encoding_is_added_to_attention_inputs(state):
    sync = _sync(state, cross_pe=True, self_pe=False)
    layer = sync.model.crossA2V
    x, y = torch.randn(1, 9, 128), torch.randn(1, 9, 128)
    pe = PositionalEncoding(128).table(9)
    layer.positional_emb = None  # the same layer without PE, fed X + PE and Y + PE by hand
    with torch.no_grad():
        by_hand = layer(src=x + pe, tar=y + pe)
    layer.positional_emb = PositionalEncoding(128)
    with torch.no_grad():
        torch.testing.assert_close(layer(src=x, tar=y), by_hand)


def test_official_code_variant_and_its_buffers(state):
    """The SyncTalkNet code's own table, and its checkpoints' `positional_emb.pe` buffers."""
    table = PositionalEncoding(128, "official").table(5)
    assert table[3, 4].item() == pytest.approx(math.sin(3 / 10000 ** (2 * 4 / 128)), abs=1e-6)
    assert table[3, 5].item() == pytest.approx(math.cos(3 / 10000 ** (2 * 5 / 128)), abs=1e-6)
    with_buffers = dict(state)
    for name, d in (("crossA2V", 128), ("crossV2A", 128), ("selfAV", 256)):
        with_buffers[f"model.{name}.positional_emb.pe"] = torch.zeros(1, 400, d)
    sync = SyncTalkNet(pe_variant="official")
    sync.load_state_dict(with_buffers, strict=True)
    with pytest.raises(ValueError, match="variant"):
        PositionalEncoding(128, "other")  # type: ignore[arg-type]


# --- registry ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint_file(state, tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "talknet_random.model"
    torch.save(state, path)
    return path


@pytest.mark.parametrize("name", ["talknet", "sync-talknet"])
def test_load_model_with_weights(name, checkpoint_file, state):
    loaded = load_model(name, weights=checkpoint_file)
    assert not loaded.training
    assert isinstance(loaded, SyncTalkNet if name == "sync-talknet" else TalkNet)
    assert torch.equal(loaded.state_dict()["lossAV.FC.weight"], state["lossAV.FC.weight"])


def test_registry_entries():
    talknet, sync = get_spec("talknet"), get_spec("sync-talknet")
    assert talknet.license == sync.license == "MIT (TaoRuijie/TalkNet-ASD)"
    assert set(talknet.checkpoints) == {"talkset", "ava"}
    assert talknet.checkpoints["talkset"].filename == "pretrain_TalkSet.model"
    assert talknet.checkpoints["ava"].filename == "pretrain_AVA.model"
    assert all(c.sha256 is None for c in talknet.checkpoints.values())
    assert not sync.checkpoints


def test_unverified_checkpoint_is_never_downloaded(monkeypatch, tmp_path):
    def no_network(*args, **kwargs):
        raise AssertionError("an unverified checkpoint must not be downloaded")

    monkeypatch.setenv("SYNCASD_CACHE", str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    for name in ("talknet", "talknet.ava"):
        url = get_spec("talknet").checkpoints[name.partition(".")[2] or "talkset"].url
        with pytest.raises(WeightsError, match="--weights") as info:
            download(name)
        assert url in str(info.value)
        with pytest.raises(WeightsError, match="--weights"):
            load_model(name)
    assert not list(tmp_path.iterdir())
    with pytest.raises(WeightsError, match="sync-talknet has no published weights: train it"):
        load_model("sync-talknet")


def test_wrong_architecture_checkpoint():
    with pytest.raises(WeightsError, match=r"missing.*unexpected"):
        load_model("talknet", weights=DATA / "weights" / "light_asd_ava.model")
