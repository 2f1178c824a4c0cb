"""RothNet / Sync-RothNet: shapes, 11-frame windows, losses, training, determinism, ONNX."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from syncasd.losses import frame_cross_entropy
from syncasd.models.onnx import OrtModel, export_onnx
from syncasd.models.rothnet import RothNet, SyncRothNet, frame_windows, mfcc_windows


def clip(b: int, t: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    video = torch.rand(b, t, 112, 112, generator=g) * 255
    mfcc = torch.randn(b, 4 * t, 13, generator=g) * 8
    return video, mfcc


def calibrate(model: nn.Module, video: torch.Tensor, mfcc: torch.Tensor) -> nn.Module:
    """Give every BatchNorm the statistics of real activations (as training would), then eval:
    a freshly built network in eval mode is nearly constant, which would make checks weak."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration passes
    model.train()
    with torch.no_grad():
        model.frame_logits(video, mfcc)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> SyncRothNet:
    torch.manual_seed(0)
    return calibrate(SyncRothNet(), *clip(2, 12, seed=1))


def test_parameter_count():
    counts = {
        name: sum(p.numel() for p in m.parameters()) for name, m in RothNet().named_children()
    }
    assert counts == {
        "visualEncoder": 605_888,
        "audioEncoder": 166_528,
        "fusion": 32_896,
        "lossAV": 258,
    }
    # Sync-RothNet is the same network (only the training loss differs): weights interchange.
    assert RothNet().state_dict().keys() == SyncRothNet().state_dict().keys()


@pytest.mark.parametrize("t", [1, 4, 10, 11, 13])
def test_shapes(model, t):
    video, mfcc = clip(2, t)
    with torch.no_grad():
        visual, audio = model.embed(video, mfcc)
        logits = model.frame_logits(video, mfcc)
    assert visual.shape == audio.shape == (2, t, 128)
    assert logits.shape == (2, t, 2)
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(model(video, mfcc), logits)


def test_predict_is_a_probability(model):
    probs = model.predict(*clip(2, 7))
    assert probs.shape == (2, 7)
    assert ((probs >= 0) & (probs <= 1)).all()
    assert not probs.requires_grad


def test_mismatched_lengths_use_the_common_frames(model):
    video, mfcc = clip(1, 9)
    with torch.no_grad():
        ref = model.frame_logits(video[:, :7], mfcc[:, :28])
        torch.testing.assert_close(model.frame_logits(video[:, :7], mfcc), ref)
        torch.testing.assert_close(model.frame_logits(video, mfcc[:, :30]), ref)  # 30 rows: 7


# --- the 11-frame centre-frame window -------------------------------------------------------------


def test_frame_windows_are_edge_padded():
    x = torch.arange(4.0).reshape(1, 4)
    windows = frame_windows(x, 5, 5)
    assert windows.shape == (1, 4, 11)
    for t in range(4):
        expected = [min(max(k, 0), 3) for k in range(t - 5, t + 6)]
        assert windows[0, t].tolist() == expected


def test_mfcc_windows_take_the_rows_of_the_11_frames():
    rows = torch.arange(4 * 6.0).reshape(1, 24, 1).expand(1, 24, 13)
    windows = mfcc_windows(rows, 5, 5)
    assert windows.shape == (1, 6, 44, 13)
    for t in range(6):
        frames = [min(max(k, 0), 5) for k in range(t - 5, t + 6)]
        expected = [4 * f + r for f in frames for r in range(4)]
        assert windows[0, t, :, 0].tolist() == expected


def test_each_frame_sees_only_its_11_frame_window(model):
    """Changing frame 12 (video and audio) changes the logits of frames 7…17 and no other."""
    video, mfcc = clip(1, 20, seed=3)
    other_video, other_mfcc = video.clone(), mfcc.clone()
    other_video[:, 12] = 255 - other_video[:, 12]
    other_mfcc[:, 48:52] = -other_mfcc[:, 48:52]
    with torch.no_grad():
        a = model.frame_logits(video, mfcc)[0]
        b = model.frame_logits(other_video, other_mfcc)[0]
    changed = [t for t in range(20) if not torch.equal(a[t], b[t])]
    assert changed == list(range(7, 18))


def test_short_track_is_the_edge_padded_window(model):
    """T = 1: the window is 11 copies of the one frame (and its audio), so the logit equals the
    centre logit of an 11-frame clip of that frame repeated."""
    video, mfcc = clip(1, 1, seed=4)
    with torch.no_grad():
        single = model.frame_logits(video, mfcc)
        repeated = model.frame_logits(video.repeat(1, 11, 1, 1), mfcc.repeat(1, 11, 1))
    torch.testing.assert_close(single[0, 0], repeated[0, 5], atol=1e-5, rtol=1e-5)


# --- losses ---------------------------------------------------------------------------------------


def test_rothnet_loss_is_centre_frame_cross_entropy(model):
    plain = RothNet()
    plain.load_state_dict(model.state_dict())
    plain.eval()
    video, mfcc = clip(2, 5)
    labels = torch.tensor([[0, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    with torch.no_grad():
        expected = frame_cross_entropy(plain.frame_logits(video, mfcc), labels)
        torch.testing.assert_close(plain.loss(video, mfcc, labels), expected)


def test_sync_rothnet_loss_is_the_papers_sum(model):
    """L = CE(f_b(V_i, A_i), y_i) + β·CE(f_b(V_γ, A_φ(γ)), 0), assembled by hand from the parts."""
    video, mfcc = clip(4, 5)
    labels = torch.tensor([[0, 1, 1, 0, 0], [0, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 0, 0, 1]])
    with torch.no_grad():
        out = model.contrastive_loss(video, mfcc, labels, partners=torch.tensor([2, 0, 1]))
        v, a = model.embed(video, mfcc)
        asd = frame_cross_entropy(model.backend(v, a), labels)
        swapped = model.backend(v[[0, 2, 3]], a[[3, 0, 2]])  # Γ = {0, 2, 3}, φ = (3, 0, 2)
        contrast = frame_cross_entropy(swapped, torch.zeros(3, 5, dtype=torch.long))
    assert out.positives.tolist() == [0, 2, 3]
    assert out.partners.tolist() == [3, 0, 2]
    torch.testing.assert_close(out.asd, asd)
    torch.testing.assert_close(out.contrast, contrast)
    torch.testing.assert_close(out.total, asd + 1.0 * contrast)
    assert model.beta == 1.0


# --- training -------------------------------------------------------------------------------------


def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """3 tracks × 4 frames: tracks 0 and 1 speak at some frames (so they are exchanged), 2 not."""
    video, mfcc = clip(3, 4, seed=7)
    labels = torch.tensor([[0, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]])
    return video, mfcc, labels


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    net = SyncRothNet().train()
    terms = net.loss_terms(*batch())
    assert terms["contrast"] > 0
    terms["total"].backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert missing == []


def test_training_lowers_the_loss():
    torch.manual_seed(0)
    net = SyncRothNet().train()
    video, mfcc, labels = batch()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(20):
        loss = net.loss(video, mfcc, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = net.loss(video, mfcc, labels).item()
    assert final < 0.7 * losses[0], losses


def test_eval_is_deterministic(model):
    video, mfcc = clip(2, 6)
    with torch.no_grad():
        first = model.frame_logits(video, mfcc)
        second = model.frame_logits(video, mfcc)
    assert torch.equal(first, second)


# --- ONNX -----------------------------------------------------------------------------------------


def test_onnx_matches_torch(model, tmp_path):
    path = export_onnx(model, tmp_path / "sync-rothnet.onnx", frames=8)
    ort = OrtModel(path)
    for t in (3, 8, 13):  # shorter and longer than the exported length and the window
        video, mfcc = clip(1, t, seed=t)
        with torch.no_grad():
            expected = model.frame_logits(video, mfcc)
        got = ort.frame_logits(video, mfcc)
        assert got.shape == (1, t, 2)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    assert not model.training
