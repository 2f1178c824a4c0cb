"""IC-SyncNet (Park et al. 2024): shapes, eq. 7, BlurPool, DropBlock, offset scoring,
drop-and-tune, parameter counts, checkpoints, ONNX."""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest
import torch
from conftest import FIXTURES, needs_shared
from torch import nn

from syncasd.audio import MEL_SILENCE, log_mel, mel_window
from syncasd.models.icsyncnet import (
    CONFIGS,
    BlurPool,
    DropBlock,
    ICSyncNet,
    audio_windows,
    parameter_count,
)


def inputs(model: ICSyncNet, b: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    d = model.dims
    g = torch.Generator().manual_seed(seed)
    mouths = torch.rand(b, 5 * d.image_channels, d.mouth_height, d.mouth_width, generator=g) * 255
    mel = torch.rand(b, 1, 80, 32, generator=g) * 8 - 4
    return mouths, mel


def calibrate(model: ICSyncNet, mouths: torch.Tensor, mel: torch.Tensor) -> ICSyncNet:
    """BatchNorm statistics from real activations (as training would leave them), then eval."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    rate = model.drop_blocks()[0].drop_rate
    model.set_drop_rate(0.0)
    model.train()
    with torch.no_grad():
        model(mouths, mel)
    model.set_drop_rate(rate)
    return model.eval()


@pytest.fixture(scope="module")
def cpu_model() -> ICSyncNet:
    torch.manual_seed(0)
    model = ICSyncNet.from_config("cpu")
    return calibrate(model, *inputs(model, 8, seed=1))


@pytest.fixture(scope="module")
def paper_model() -> ICSyncNet:
    torch.manual_seed(0)
    return ICSyncNet.from_config("paper").eval()


# --- sizes ----------------------------------------------------------------------------------------


def test_parameter_counts():
    paper = ICSyncNet.from_config("paper")
    cpu = ICSyncNet.from_config("cpu")
    assert parameter_count(paper) == 40_640_705  # the paper: 40.6 M
    assert abs(parameter_count(paper) / 40.6e6 - 1) < 0.002
    assert (parameter_count(paper.visual), parameter_count(paper.audio)) == (24_191_744, 16_448_960)
    assert parameter_count(cpu) == 1_669_937  # gray mouths: 5 input channels
    assert (parameter_count(cpu.visual), parameter_count(cpu.audio)) == (737_840, 932_096)


def test_paper_layout():
    d = CONFIGS["paper"]
    assert (d.visual_in, d.mouth_height, d.mouth_width) == (15, 128, 256)  # 5 colour images
    assert (d.mel_bins, d.mel_columns) == (80, 32)
    assert d.visual_map() == (4, 8) and d.audio_map() == (5, 4)
    net = ICSyncNet(d)
    # BlurPool wherever the visual encoder downsamples, none in the audio encoder.
    assert sum(isinstance(m, BlurPool) for m in net.visual.modules()) == 5
    assert not any(isinstance(m, BlurPool) for m in net.audio.modules())
    assert not any(isinstance(m, nn.Conv2d) and m.stride != (1, 1) for m in net.visual.modules())
    # Two DropBlocks per encoder: 3D in the visual one, 2D in the audio one.
    assert [m.dims for m in net.visual.modules() if isinstance(m, DropBlock)] == [3, 3]
    assert [m.dims for m in net.audio.modules() if isinstance(m, DropBlock)] == [2, 2]
    assert all(m.drop_rate == 0.1 for m in net.drop_blocks())
    assert net.temperature.item() == pytest.approx(0.07)
    assert CONFIGS["cpu"].mouth_height == 48 and CONFIGS["cpu"].mouth_width == 96


@pytest.mark.parametrize("name", ["cpu", "paper"])
def test_shapes_and_unit_norm(name, cpu_model, paper_model):
    model = cpu_model if name == "cpu" else paper_model
    mouths, mel = inputs(model, 2)
    with torch.no_grad():
        v = model.visual_embeddings(mouths)
        a = model.audio_embeddings(mel)
        logits = model(mouths, mel)
    d = model.dims.embed_dim
    assert v.shape == (2, d) and a.shape == (2, d) and logits.shape == (2,)
    torch.testing.assert_close(v.norm(dim=1), torch.ones(2))
    torch.testing.assert_close(a.norm(dim=1), torch.ones(2))
    with pytest.raises(ValueError):
        model.visual_embeddings(mouths[:, :, :-1])
    with pytest.raises(ValueError):
        model.audio_embeddings(mel[..., :16])


def test_probability_is_sigmoid_of_cosine_over_temperature(cpu_model):
    model = ICSyncNet.from_config("cpu")
    model.load_state_dict(cpu_model.state_dict())
    model.eval()
    with torch.no_grad():
        model.log_temperature.fill_(math.log(0.25))
    mouths, mel = inputs(model, 4, seed=3)
    with torch.no_grad():
        v = model.visual_embeddings(mouths).double()
        a = model.audio_embeddings(mel).double()
        p = model.sync_probability(mouths, mel).double()
    cos = (v * a).sum(1) / (v.norm(dim=1) * a.norm(dim=1))
    expected = 1 / (1 + torch.exp(-cos / 0.25))
    torch.testing.assert_close(p, expected, rtol=1e-5, atol=1e-6)
    assert ((p > 0) & (p < 1)).all()
    # Several audio windows per image: (B, K) logits.
    k = torch.stack([a, a.roll(1, 0), a.roll(2, 0)], dim=1).float()
    logits = model.similarity_logits(v.float(), k)
    assert logits.shape == (4, 3)
    torch.testing.assert_close(logits[:, 0], (cos / 0.25).float(), rtol=1e-5, atol=1e-5)


def test_temperature_stays_positive_under_any_parameter():
    model = ICSyncNet.from_config("cpu")
    with torch.no_grad():
        model.log_temperature.fill_(-30.0)
    assert model.temperature.item() > 0
    with torch.no_grad():
        model.log_temperature.fill_(5.0)
    assert model.temperature.item() == pytest.approx(math.exp(5.0))


# --- BlurPool -------------------------------------------------------------------------------------


def test_blurpool_by_hand():
    # A 16 at (1, 1) of a 4×4 map. Reflect padding by 1 repeats row/column 1 at padded index 0,
    # so the padded 6×6 map holds 16 at (0,0), (0,2), (2,0), (2,2). The filter is
    # [1,2,1]ᵀ[1,2,1] / 16; with stride 2 output (i, j) sees padded rows 2i…2i+2, cols 2j…2j+2:
    #   (0,0): the four corners, weight 1/16 each: 4·16/16 = 4
    #   (0,1): (0,2) and (2,2) at the window's left corners: 2·16/16 = 2;  (1,0) likewise 2
    #   (1,1): (2,2) at the top-left corner: 16/16 = 1
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 1, 1] = 16.0
    y = BlurPool(1, size=3, stride=2)(x)
    torch.testing.assert_close(y, torch.tensor([[[[4.0, 2.0], [2.0, 1.0]]]]))
    # A constant stays constant (the filter sums to 1); odd sizes round up: 5 → 3.
    z = BlurPool(3)(torch.full((2, 3, 5, 7), 2.5))
    assert z.shape == (2, 3, 3, 4)
    torch.testing.assert_close(z, torch.full_like(z, 2.5))
    # Channels are blurred separately.
    two = BlurPool(2)(torch.cat([x, 2 * x], dim=1))
    torch.testing.assert_close(two[:, 1], 2 * two[:, 0])


def test_blurpool_is_not_in_the_state_dict():
    assert not any("kernel" in k for k in ICSyncNet.from_config("cpu").state_dict())


# --- DropBlock ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dims", [2, 3])
def test_dropblock_identity_in_eval_and_at_zero(dims):
    x = torch.randn(2, 8, 10, 10)
    block = DropBlock(0.3, 3, dims)
    assert block.eval()(x) is x
    assert DropBlock(0.0, 3, dims).train()(x) is x


@pytest.mark.parametrize("dims,shape", [(2, (4, 64, 32, 32)), (3, (4, 64, 16, 16))])
def test_dropblock_drops_about_the_rate(dims, shape):
    torch.manual_seed(0)
    block = DropBlock(0.1, 3, dims).train()
    x = torch.ones(shape)
    shares = []
    for _ in range(20):
        y = block(x)
        dropped = y == 0
        shares.append(dropped.float().mean().item())
        # The kept units are scaled by count / kept, so the mean is preserved.
        kept = y[~dropped]
        torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - shares[-1])))
        if dims == 2:  # the same squares in every channel
            assert (dropped == dropped[:, :1]).all()
    # Overlapping blocks make the share a little under p (measured 0.096 and 0.094).
    assert 0.08 < float(np.mean(shares)) < 0.105


def test_dropblock_3d_blocks_span_channels():
    torch.manual_seed(1)
    y = DropBlock(0.1, 3, dims=3).train()(torch.ones(1, 32, 12, 12))
    dropped = y[0] == 0
    assert not (dropped == dropped[:1]).all()  # channels differ...
    # ...but every dropped unit lies in a 3×3×3 cube: its channel run is ≥ 3 long.
    c, h, w = dropped.nonzero()[0].tolist()
    run = dropped[:, h, w]
    assert run[max(c - 2, 0) : c + 3].sum() >= 3


def test_set_drop_rate():
    model = ICSyncNet.from_config("cpu")
    model.set_drop_rate(0.25)
    assert [m.drop_rate for m in model.drop_blocks()] == [0.25] * 4
    with pytest.raises(ValueError):
        model.set_drop_rate(1.0)


def test_dropblock_is_active_in_training(cpu_model):
    model = ICSyncNet.from_config("cpu")
    model.load_state_dict(cpu_model.state_dict())
    mouths, mel = inputs(model, 2)
    model.train()
    torch.manual_seed(0)
    with torch.no_grad():
        a = model.audio.trunk(mel)
    model.set_drop_rate(0.0)
    with torch.no_grad():
        b = model.audio.trunk(mel)
    assert not torch.equal(a, b)


# --- drop-and-tune --------------------------------------------------------------------------------


def test_drop_and_tune_freezes_all_but_batchnorm():
    model = ICSyncNet.from_config("cpu")
    trainable = model.drop_and_tune()
    assert all(m.drop_rate == 0.0 for m in model.drop_blocks())
    bn = [p for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in (m.weight, m.bias)]
    assert {id(p) for p in trainable} == {id(p) for p in bn}
    for name, p in model.named_parameters():
        assert p.requires_grad == any(p is q for q in bn), name
    assert not model.log_temperature.requires_grad
    # One training step moves only BN parameters; BN running statistics still adapt.
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    stats = model.visual.head[1].running_mean.clone()
    opt = torch.optim.SGD(trainable, lr=0.1)
    mouths, mel = inputs(model, 4)
    model.train()
    model(mouths, mel).sum().backward()
    opt.step()
    bn_ids = {id(p) for p in bn}
    moved = {k for k, p in model.named_parameters() if not torch.equal(before[k], p)}
    assert moved and all(id(dict(model.named_parameters())[k]) in bn_ids for k in moved)
    assert not torch.equal(stats, model.visual.head[1].running_mean)


# --- offset scoring -------------------------------------------------------------------------------


def test_audio_windows_match_mel_window():
    rng = np.random.default_rng(0)
    mel = rng.uniform(-4, 4, (80, 40)).astype(np.float32)  # 40 columns ≈ 12.2 frames
    windows = audio_windows(torch.from_numpy(mel), frames=12, max_offset=3)
    assert windows.shape == (18, 80, 32)
    for j in range(18):
        centre = j - 3
        np.testing.assert_array_equal(windows[j].numpy(), mel_window(mel, centre - 2))
    assert (windows[0, :, :8] == MEL_SILENCE).all()


def test_offset_probabilities_equal_per_window_forward(cpu_model):
    d = cpu_model.dims
    t_frames, k_max = 7, 2
    g = torch.Generator().manual_seed(5)
    mouths = torch.randint(
        0, 256, (t_frames, d.image_channels, d.mouth_height, d.mouth_width), generator=g
    )
    mouths = mouths.to(torch.uint8)
    audio = (np.random.default_rng(5).standard_normal(t_frames * 640) * 3000).astype(np.int16)
    mel = log_mel(audio)
    probs = cpu_model.offset_probabilities(mouths, torch.from_numpy(mel), k_max, batch_size=3)
    cos = cpu_model.offset_cosines(mouths, torch.from_numpy(mel), k_max, batch_size=4)
    assert probs.shape == cos.shape == (2 * k_max + 1, t_frames)

    expected = torch.empty(2 * k_max + 1, t_frames)
    with torch.no_grad():
        for t in range(t_frames):
            frames = [min(max(i, 0), t_frames - 1) for i in range(t - 2, t + 3)]
            window = mouths[frames].flatten(0, 1)[None].float()  # (1, 5·C, H, W)
            for k in range(-k_max, k_max + 1):
                m = torch.from_numpy(mel_window(mel, t + k - 2))[None, None]
                expected[k + k_max, t] = torch.sigmoid(cpu_model(window, m))[0]
    torch.testing.assert_close(probs, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(torch.sigmoid(cos / cpu_model.temperature), probs)
    assert cpu_model.offset_probabilities(mouths[:0], torch.from_numpy(mel)).shape == (31, 0)


# --- checkpoints and ONNX -------------------------------------------------------------------------


def test_checkpoint_round_trip_with_weights_only(cpu_model):
    buf = io.BytesIO()
    torch.save(cpu_model.checkpoint(), buf)
    buf.seek(0)
    loaded = ICSyncNet.from_checkpoint(torch.load(buf, weights_only=True)).eval()
    assert loaded.dims == cpu_model.dims
    mouths, mel = inputs(cpu_model, 2)
    with torch.no_grad():
        torch.testing.assert_close(loaded(mouths, mel), cpu_model(mouths, mel))


def test_unknown_config():
    with pytest.raises(ValueError):
        ICSyncNet.from_config("huge")


def test_onnx_export_of_the_cpu_config(cpu_model, tmp_path):
    # syncasd.models.onnx exports the ASD models' frame_logits(video, mfcc) only, so the
    # sync-net goes through torch.onnx directly; batch is dynamic.
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "icsyncnet-cpu.onnx"
    mouths, mel = inputs(cpu_model, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about the input shape checks
        torch.onnx.export(
            cpu_model,
            (mouths, mel),
            str(path),
            input_names=["mouths", "mel"],
            output_names=["logits"],
            dynamic_axes={"mouths": {0: "batch"}, "mel": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    assert cpu_model.training is False
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    mouths, mel = inputs(cpu_model, 3, seed=9)
    (out,) = session.run(None, {"mouths": mouths.numpy(), "mel": mel.numpy()})
    with torch.no_grad():
        expected = cpu_model(mouths, mel).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


# --- the bundled weights (trained on a GPU from a sync pack; model card ic_syncnet.md) --------


@needs_shared
def test_bundled_weights_move_their_offset_with_the_audio_of_a_test_clip():
    """VASP ID1/014 (a test identity), its audio delayed by d frames: the offset of the mean
    logit row moves by d (the clip's own offset, where the model puts it, is not assumed 0)."""
    from syncasd.models import load_model
    from syncasd.offsets import ICSyncOffsets
    from syncasd.syncmap import clipped_logit

    crops = np.load(FIXTURES / "inputs" / "clip014_gray112.npy")
    audio = np.load(FIXTURES / "inputs" / "clip014_audio16k_int16.npy")
    backend = ICSyncOffsets(load_model("ic-syncnet"), 15)

    def offset(d: int) -> int:
        delayed = np.zeros_like(audio)
        if d >= 0:
            delayed[d * 640 :] = audio[: len(audio) - d * 640]
        else:
            delayed[: d * 640] = audio[-d * 640 :]
        matrix = backend.matrix(crops, backend.features(delayed), 0)
        rows = clipped_logit(matrix.astype(np.float64))[:, 20:-20].mean(axis=1)
        return int(rows.argmax()) - 15

    own = offset(0)
    assert abs(own) <= 3
    assert [offset(d) - own for d in (5, -7)] == [5, -7]


# --- inside the default model: mouths and windows as tensor arithmetic ---------------------------


@needs_shared
def test_mouth_images_are_opencv_area_resizes_of_the_lower_half():
    import cv2

    from syncasd.models.icsyncnet import mouth_crops, mouth_images

    crops = np.load(FIXTURES / "inputs" / "clip014_gray112.npy")[:20]
    dims = CONFIGS["cpu"]
    expected = np.stack([cv2.resize(c[56:], (96, 48), interpolation=cv2.INTER_AREA) for c in crops])
    images = mouth_images(torch.from_numpy(crops).float(), dims)
    assert images.shape == (20, 48, 96)
    np.testing.assert_array_equal(images.numpy(), expected)
    np.testing.assert_array_equal(mouth_crops(crops, dims)[:, 0], expected)


@needs_shared
def test_windows_from_the_100_hz_log_mel_are_the_80_hz_windows():
    from syncasd.audio import MEL_HOP_100HZ
    from syncasd.models.icsyncnet import mel_windows_at_100hz, window_starts

    audio = np.load(FIXTURES / "inputs" / "clip014_audio16k_int16.npy")[: 30 * 640]
    at_80, at_100 = log_mel(audio), log_mel(audio, hop=MEL_HOP_100HZ)[:, : 4 * 30]
    centres = torch.arange(-4, 34)
    windows = mel_windows_at_100hz(torch.from_numpy(at_100)[None], centres, max_offset=4)
    expected = audio_windows(torch.from_numpy(at_80), frames=30, max_offset=4)
    assert windows.shape == (1, *expected.shape)
    # Every 80-Hz column 4j is 100-Hz column 5j (both centred on sample 800·j): equal there,
    # inside the audio; the others lie between two 100-Hz columns.
    columns = window_starts(centres)[:, None] + torch.arange(32)
    inside = (columns % 4 == 0) & (columns >= 0) & (5 * columns // 4 < at_100.shape[1])
    got, want = windows[0].permute(0, 2, 1)[inside], expected.permute(0, 2, 1)[inside]
    assert inside.sum() > 200
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    # Before the audio: silence.
    assert (windows[0, 0, :, columns[0] < 0] == MEL_SILENCE).all()


def test_windows_from_the_100_hz_log_mel_interpolate_linearly():
    """A log-mel that rises by 1 per 100-Hz column reads 1.25 per 80-Hz column, exactly."""
    from syncasd.models.icsyncnet import mel_windows_at_100hz, window_starts

    ramp = torch.arange(400.0).expand(80, 400)[None]  # 100 frames
    centres = torch.arange(20, 80)
    windows = mel_windows_at_100hz(ramp, centres, max_offset=15)
    columns = window_starts(centres)[:, None] + torch.arange(32)
    np.testing.assert_allclose(windows[0, :, 3].numpy(), 1.25 * columns.numpy(), atol=1e-4)


def test_standardised_by_hand():
    from syncasd.models.icsyncnet import standardised

    image = torch.tensor([[[10.0, 20.0, 30.0], [40.0, 50.0, 60.0]]])  # mean 35, std 18.708
    out = standardised(image, 100.0, 30.0)
    spread = np.std([10, 20, 30, 40, 50, 60], ddof=1)
    expected = 100.0 + (np.array([10, 20, 30, 40, 50, 60]) - 35.0) * 30.0 / spread
    np.testing.assert_allclose(out.numpy().ravel(), expected, rtol=1e-6)
    # A dim, low-contrast copy of a mouth looks like the mouth itself.
    rng = np.random.default_rng(0)
    mouth = torch.from_numpy(rng.uniform(60, 160, (2, 48, 96)).astype(np.float32))
    np.testing.assert_allclose(
        standardised(0.35 * mouth + 5, 85.0, 32.0), standardised(mouth, 85.0, 32.0), atol=1e-3
    )
    # A flat image stays flat at the mean; values are clipped to 0-255.
    assert torch.equal(
        standardised(torch.full((1, 4, 4), 7.0), 85.0, 32.0), torch.full((1, 4, 4), 85.0)
    )
    assert (
        standardised(image, 250.0, 200.0).max() == 255.0
        and standardised(image, 5.0, 200.0).min() == 0.0
    )
