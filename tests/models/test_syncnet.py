"""SyncNet v2 against the official syncnet_python `SyncNetInstance.evaluate` (fixtures/syncnet).

The fixture ran with procedurally generated random weights (fixtures README §3), rebuilt here
from the manifest once per module. The whole clip (251 JPEG frames, 246 windows) is embedded
once per module, batched by 20 as the original does: ~10 s on one CPU thread.

Tolerances: the reference's own fp32-vs-fp64 noise is 1e-4 on lip embeddings (absmax 102) and
1.2e-4 on mean distances (≈ 820). We require embeddings within 1e-4 of their absmax, distances
within 2e-6 relative (≈ 1.6e-3); measured here: 2.3e-7 / 3.3e-7 relative (lip / audio),
1.2e-4 absolute on the distances.
"""

from __future__ import annotations

import hashlib
import json
import re

import cv2
import numpy as np
import pytest
import torch
from conftest import DATA, FIXTURES, needs_shared, random_state_dict
from scipy.io import wavfile

from syncasd.audio import mfcc as compute_mfcc
from syncasd.errors import WeightsError
from syncasd.models import available_models, get_spec, load_model
from syncasd.models.syncnet import (
    SyncNetV2,
    distance_matrix,
    mfcc_windows,
    offset_and_confidence,
    sync_offset,
    video_windows,
    window_count,
)

pytestmark = needs_shared

REF = FIXTURES / "syncnet"
VSHIFT = 15  # what the fixture ran with (demo_syncnet.py's default)
EMBED_REL = 1e-4  # of the reference's absmax
DIST_RTOL = 2e-6


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    """The random-weight S(1024) checkpoint (102 tensors, each checked against its sha256)."""
    return random_state_dict(REF / "syncnet_random_manifest.json")


@pytest.fixture(scope="module")
def model(state) -> SyncNetV2:
    net = SyncNetV2()
    net.load_state_dict(state, strict=True)
    return net.eval()


@pytest.fixture(scope="module")
def reference() -> dict:
    return torch.load(REF / "syncnet_outputs.pt", weights_only=True)


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((REF / "syncnet_expected.json").read_text())


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """The JPEG frames evaluate read, decoded as it decodes them (cv2.imread, BGR)."""
    paths = sorted((REF / "frames_jpg").glob("*.jpg"))
    return np.stack([cv2.imread(str(p)) for p in paths])


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    """16 kHz int16: byte-identical to the wav SyncNet's own ffmpeg call produced."""
    return wavfile.read(FIXTURES / "inputs" / "clip014_audio16k.wav")[1]


@pytest.fixture(scope="module")
def embeddings(model, frames, audio) -> tuple[torch.Tensor, torch.Tensor]:
    """Lip and audio embeddings of all 246 windows (the expensive part, once per module)."""
    return model.embed(frames, compute_mfcc(audio), window_count(len(frames), len(audio)))


@pytest.fixture(scope="module")
def dists(embeddings) -> torch.Tensor:
    return distance_matrix(*embeddings, vshift=VSHIFT)


def _assert_embeddings(ours: torch.Tensor, ref: torch.Tensor) -> None:
    assert ours.shape == ref.shape
    err = (ours - ref).abs().max().item()
    assert err <= EMBED_REL * ref.abs().max().item(), err


def test_state_dict_keys_are_the_originals_in_order(state):
    # Same order too: the original's loadParameters copies by name, but a strict, ordered
    # match means the module tree is the original's, index for index.
    assert list(SyncNetV2().state_dict()) == list(state)


def test_frames_decode_as_the_reference_decoded_them(frames, expected):
    # Otherwise every parity failure below would be a JPEG decoder difference, not ours.
    digests = expected["decoded_frame_sha256_cv2_imread_bgr_hwc_uint8"]
    assert len(frames) == expected["n_frames"] == len(digests)
    for i, frame in enumerate(frames):
        assert hashlib.sha256(frame.tobytes()).hexdigest() == digests[f"{i + 1:06d}.jpg"], i


def test_window_count_is_the_originals(frames, audio, reference):
    # min(251 frames, 160768 // 640 = 251) − 5: one window fewer than would fit.
    assert window_count(len(frames), len(audio)) == reference["n_windows"] == 246
    assert window_count(6, 10 * 640) == 1 and window_count(5, 10 * 640) == 0


def test_video_windows_are_bgr_frames_stacked_in_time(frames):
    first24 = np.load(REF / "syncnet_frames_bgr_first24.npy")
    np.testing.assert_array_equal(frames[:24], first24)
    windows = video_windows(frames, range(20))
    assert windows.shape == (20, 3, 5, 224, 224) and windows.dtype == torch.float32
    # Window 7, time step 2, channel 0 is frame 9's blue plane (no BGR→RGB swap).
    np.testing.assert_array_equal(windows[7, 0, 2].numpy(), first24[9, :, :, 0])
    np.testing.assert_array_equal(windows[19, 2, 4].numpy(), first24[23, :, :, 2])
    with pytest.raises(ValueError, match="past"):
        video_windows(frames[:24], [20])


def test_mfcc_windows_match_the_reference(audio):
    mfcc = compute_mfcc(audio)
    np.testing.assert_allclose(mfcc.T, np.load(REF / "syncnet_mfcc_full_13xN.npy"), atol=1e-9)
    windows = mfcc_windows(mfcc, range(20))
    ref = np.load(REF / "syncnet_mfcc_windows_first20.npy")
    assert windows.shape == ref.shape == (20, 1, 13, 20) and windows.dtype == torch.float32
    np.testing.assert_allclose(windows.numpy(), ref, rtol=1e-6, atol=1e-6)  # measured: equal
    with pytest.raises(ValueError, match="past"):
        mfcc_windows(mfcc[:39], [5])  # rows 20..39 need 40 rows


def test_first20_embeddings_match(model, frames, audio):
    with torch.no_grad():
        lip = model.forward_lip(video_windows(frames, range(20)))
        aud = model.forward_aud(mfcc_windows(compute_mfcc(audio), range(20)))
    _assert_embeddings(lip, torch.from_numpy(np.load(REF / "syncnet_lip_embed_first20.npy")))
    _assert_embeddings(aud, torch.from_numpy(np.load(REF / "syncnet_aud_embed_first20.npy")))


def test_all_embeddings_match(embeddings, reference):
    lip, aud = embeddings
    _assert_embeddings(lip, reference["lip_embed"])
    _assert_embeddings(aud, reference["aud_embed"])


def test_distance_matrix_of_the_reference_embeddings_is_calc_pdist(reference):
    # The distance step alone, from the reference's own embeddings (measured: bit-identical).
    ours = distance_matrix(reference["lip_embed"], reference["aud_embed"], VSHIFT)
    torch.testing.assert_close(ours, reference["dists_vshift15"], rtol=0, atol=1e-4)
    # First 20 alone: the zero padding now sits at rows 20.., unlike rows 0..19 of the full run.
    first = distance_matrix(reference["lip_embed_first20"], reference["aud_embed_first20"], VSHIFT)
    torch.testing.assert_close(first, reference["dists_vshift15_first20"], rtol=0, atol=1e-4)


def test_distance_matrix_matches(dists):
    ref = torch.from_numpy(np.load(REF / "syncnet_dists_vshift15.npy"))
    assert dists.shape == ref.shape == (246, 2 * VSHIFT + 1)
    torch.testing.assert_close(dists, ref, rtol=DIST_RTOL, atol=0)


def test_sign_convention_on_the_reference_matrix(reference):
    # [i, j] pairs lip window i with audio window i + j − vshift, zero embedding outside.
    lip, aud, ref = reference["lip_embed"], reference["aud_embed"], reference["dists_vshift15"]
    for i, j in [(20, 30), (20, 0), (100, 15), (240, 25)]:
        k = i + j - VSHIFT
        other = aud[k] if 0 <= k < len(aud) else torch.zeros_like(aud[0])
        assert torch.linalg.vector_norm(lip[i] - other + 1e-6).item() == pytest.approx(
            ref[i, j].item(), rel=1e-6
        )


@pytest.mark.parametrize("delay", [3, -4, 0])
def test_offset_sign_is_minus_the_audio_delay(delay):
    """Audio delayed by d frames (its window i + d carries lip window i's sound) → offset −d;
    audio that comes early (d < 0) → offset > 0."""
    gen = torch.Generator().manual_seed(0)
    lip = torch.randn(60, 1024, generator=gen)
    aud = torch.randn(60, 1024, generator=gen)
    for i in range(60):
        if 0 <= i + delay < 60:
            aud[i + delay] = lip[i]
    assert offset_and_confidence(distance_matrix(lip, aud, VSHIFT), VSHIFT).offset == -delay


def test_offset_min_dist_and_confidence_match(dists, expected, reference):
    result = offset_and_confidence(dists, VSHIFT)
    assert result.offset == expected["offset"] == -15
    assert result.min_index == expected["minidx"] == 30
    np.testing.assert_allclose(result.mean_dists, expected["mdist"], rtol=DIST_RTOL)
    assert result.min_dist == pytest.approx(expected["minval"], rel=DIST_RTOL)
    assert result.confidence == pytest.approx(expected["conf"], abs=2e-3)
    np.testing.assert_allclose(result.framewise_dist, reference["fdist"].numpy(), rtol=DIST_RTOL)
    np.testing.assert_allclose(result.framewise_conf_raw, reference["fconf"].numpy(), atol=2e-3)
    np.testing.assert_allclose(result.framewise_conf, reference["fconfm"].numpy(), atol=2e-3)


def test_framewise_conf_matches_what_evaluate_printed(dists, expected):
    printed = expected["printed_stdout"]
    block = printed.split("Framewise conf:")[1].split("AV offset")[0]
    values = np.array([float(v) for v in re.findall(r"-?\d+\.\d+", block)])
    result = offset_and_confidence(dists, VSHIFT)
    assert values.shape == result.framewise_conf.shape == (246,)
    np.testing.assert_allclose(result.framewise_conf, values, atol=5e-4 + 2e-3)  # 3 decimals
    assert f"AV offset: \t{result.offset} " in printed
    assert f"Min dist: \t{result.min_dist:.3f}" in printed
    assert f"Confidence: \t{result.confidence:.3f}" in printed


def test_sync_offset_runs_the_whole_evaluate_flow(model, frames, audio):
    # Frames 0..29 and the matching audio: 25 windows, the full pipeline from arrays.
    result = sync_offset(model, frames[:30], audio[: 30 * 640], vshift=VSHIFT)
    assert result.framewise_conf.shape == (25,) and -VSHIFT <= result.offset <= VSHIFT
    with pytest.raises(ValueError, match="too short"):
        sync_offset(model, frames[:5], audio)


def test_registry_loads_a_syncnet_checkpoint_strictly(state, tmp_path):
    spec = get_spec("syncnet-v2")
    assert spec.kind == "sync" and spec.checkpoints[spec.default_checkpoint].sha256 is None
    # Sync models are not ASD models: the detector and benchmark loops must not see them.
    assert "syncnet-v2" not in available_models() and "syncnet-v2" in available_models(None)
    path = tmp_path / "syncnet_random.model"
    torch.save(state, path)
    net = load_model("syncnet-v2", weights=path)
    assert isinstance(net, SyncNetV2) and not net.training
    assert torch.equal(net.state_dict()["netcnnlip.0.weight"], state["netcnnlip.0.weight"])


def test_another_architectures_checkpoint_is_refused():
    with pytest.raises(WeightsError, match="not a syncnet-v2 checkpoint"):
        load_model("syncnet-v2", weights=DATA / "weights" / "light_asd_ava.model")


def test_published_weights_are_never_downloaded_unverified():
    with pytest.raises(WeightsError, match="pass --weights"):
        load_model("syncnet-v2")
