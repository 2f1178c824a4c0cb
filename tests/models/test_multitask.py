"""Multi-task ASD (Zhang et al. 2019): shapes, audio windows, eq. 1 loss, training, ONNX."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from syncasd.losses import euclidean_contrastive_loss, frame_cross_entropy
from syncasd.models.multitask import MultiTaskASD
from syncasd.models.onnx import OrtModel, export_onnx
from syncasd.models.rothnet import mfcc_windows


def clip(b: int, t: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    video = torch.rand(b, t, 112, 112, generator=g) * 255
    mfcc = torch.randn(b, 4 * t, 13, generator=g) * 8
    return video, mfcc


def calibrate(model: nn.Module, video: torch.Tensor, mfcc: torch.Tensor) -> nn.Module:
    """BatchNorm statistics from real activations (as training would leave them), then eval."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model.frame_logits(video, mfcc)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> MultiTaskASD:
    torch.manual_seed(0)
    return calibrate(MultiTaskASD(), *clip(2, 6, seed=1))


def test_paper_sizes_and_parameter_count():
    net = MultiTaskASD()
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in net.named_children()}
    assert counts == {
        "visual": 11_248_448,  # 3D conv + ResNet-18 + FC 512 → 128
        "audio": 5_205_056,  # SyncNet VGG-M + FC 512 → 512 → 128
        "gru": 1_972_224,  # 2-layer BiGRU, 256 cells, on 256-d input
        "classifier": 147_906,  # 3 FC layers
    }
    assert net.visual.frontend3D[0].kernel_size == (5, 7, 7)
    assert net.audio.netcnnaud[-3].kernel_size == (5, 4)
    assert net.visual.fc.out_features == net.audio.netfcaud[-1].out_features == 128
    assert (net.gru.hidden_size, net.gru.num_layers, net.gru.bidirectional) == (256, 2, True)
    assert sum(isinstance(m, nn.Linear) for m in net.classifier) == 3
    assert (net.lam, net.margin) == (1.0, 1.0)


@pytest.mark.parametrize("t", [1, 2, 7, 13])
def test_shapes(model, t):
    video, mfcc = clip(1, t)
    with torch.no_grad():
        visual, audio = model.embed(video, mfcc)
        logits = model.frame_logits(video, mfcc)
    assert visual.shape == audio.shape == (1, t, 128)
    assert logits.shape == (1, t, 2)
    assert torch.isfinite(logits).all()


def test_batch_of_clips(model):
    """Clips are independent: each is scored as it would be alone."""
    video, mfcc = clip(2, 5)
    with torch.no_grad():
        both = model(video, mfcc)
        second = model.frame_logits(video[1:], mfcc[1:])
    assert both.shape == (2, 5, 2)
    torch.testing.assert_close(both[1:], second, atol=1e-5, rtol=1e-5)


def test_predict_is_a_probability(model):
    probs = model.predict(*clip(1, 9))
    assert probs.shape == (1, 9)
    assert ((probs >= 0) & (probs <= 1)).all()


# --- 20 audio frames per video frame --------------------------------------------------------------


def test_audio_window_is_20_mfcc_rows_around_the_frame():
    rows = torch.arange(4 * 6.0).reshape(1, 24, 1).expand(1, 24, 13)
    windows = mfcc_windows(rows, 2, 2)
    assert windows.shape == (1, 6, 20, 13)
    # Frame 3 owns rows 12…15; its window is rows 4·3 − 8 … 4·3 + 11.
    assert windows[0, 3, :, 0].tolist() == list(range(4, 24))
    # At the ends, whole frames are repeated: frame 0 sees frames 0, 0, 0, 1, 2.
    assert windows[0, 0, :, 0].tolist() == [0, 1, 2, 3] * 3 + list(range(4, 12))


def test_audio_embedding_of_a_frame_sees_only_its_20_rows(model):
    video, mfcc = clip(1, 10, seed=2)
    other = mfcc.clone()
    other[:, 24:28] = -other[:, 24:28]  # the rows of frame 6
    with torch.no_grad():
        a = model.embed(video, mfcc)[1][0]
        b = model.embed(video, other)[1][0]
    changed = [t for t in range(10) if not torch.equal(a[t], b[t])]
    assert changed == [4, 5, 6, 7, 8]


# --- the loss (eq. 1) -----------------------------------------------------------------------------


def test_loss_is_equation_1(model):
    """L = Σ_t (L_CE + λ·L_contrast) per window, averaged over windows; label 1 = matched pair."""
    video, mfcc = clip(2, 4)
    labels = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 1]])
    with torch.no_grad():
        terms = model.loss_terms(video, mfcc, labels)
        v, a = model.embed(video, mfcc)
        logits = model.backend(v, a)
        ce = sum(
            frame_cross_entropy(logits[i, t], labels[i, t]) for i in range(2) for t in range(4)
        )
        contrast = 0.0
        for i in range(2):
            for t in range(4):
                d = torch.linalg.vector_norm(v[i, t] - a[i, t])
                if labels[i, t]:
                    contrast += 0.5 * d**2
                else:
                    contrast += 0.5 * torch.clamp(1.0 - d, min=0) ** 2
    torch.testing.assert_close(terms["ce"], ce / 2)
    torch.testing.assert_close(terms["contrast"], contrast / 2)
    torch.testing.assert_close(terms["total"], (ce + contrast) / 2)
    stage1 = model.loss(video, mfcc, labels, stage=1)
    torch.testing.assert_close(stage1, terms["contrast"])
    with pytest.raises(ValueError):
        model.loss(video, mfcc, labels, stage=3)


def test_stage1_parameters_are_the_final_fcs():
    net = MultiTaskASD()
    shapes = [tuple(p.shape) for p in net.stage1_parameters()]
    assert shapes == [(128, 512), (128,), (128, 512), (128,)]


def test_margin_is_used():
    torch.manual_seed(0)
    x, y = torch.zeros(1, 1, 128), torch.full((1, 1, 128), 0.05)  # d ≈ 0.566
    for margin in (0.5, 2.0):
        expected = 0.5 * max(margin - 0.05 * 128**0.5, 0) ** 2
        got = euclidean_contrastive_loss(x, y, torch.zeros(1, 1), margin)
        assert got.item() == pytest.approx(expected, abs=1e-6)


# --- training ------------------------------------------------------------------------------------


def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    video, mfcc = clip(2, 3, seed=5)
    return video, mfcc, torch.tensor([[1, 1, 0], [0, 0, 0]])


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    net = MultiTaskASD().train()
    net.loss(*batch()).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert missing == []


def test_training_lowers_the_loss():
    torch.manual_seed(0)
    net = MultiTaskASD().train()
    video, mfcc, labels = batch()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)  # the paper's initial learning rate
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
    video, mfcc = clip(1, 5)
    with torch.no_grad():
        assert torch.equal(model.frame_logits(video, mfcc), model.frame_logits(video, mfcc))


# --- ONNX -----------------------------------------------------------------------------------------


def test_onnx_matches_torch(model, tmp_path):
    path = export_onnx(model, tmp_path / "multitask-asd.onnx", frames=4)
    ort = OrtModel(path)
    for t in (2, 4, 9):
        video, mfcc = clip(1, t, seed=t)
        with torch.no_grad():
            expected = model.frame_logits(video, mfcc)
        got = ort.frame_logits(video, mfcc)
        assert got.shape == (1, t, 2)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    assert not model.training
