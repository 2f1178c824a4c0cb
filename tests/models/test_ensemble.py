"""The default model: Light-ASD's AVA checkpoint × our sync-aware fine-tune, on one stem."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import DATA, FIXTURES, needs_shared

from syncasd.audio import mfcc
from syncasd.defaults import DEFAULT_MODEL
from syncasd.errors import WeightsError
from syncasd.models import load_model
from syncasd.models.ensemble import SyncGatedLightASD, compose, gate_curves, gate_evidence
from syncasd.models.light_asd import LightASD
from syncasd.models.zoo import WEIGHTS_DIR

AVA = DATA / "weights" / "light_asd_ava.model"


@pytest.fixture(scope="module")
def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """3 s of VASP ID1/014: crops and MFCC as detect feeds them."""
    crops = np.load(FIXTURES / "inputs" / "clip014_gray112.npy")[:75]
    audio = np.load(FIXTURES / "inputs" / "clip014_audio16k_int16.npy")[: 75 * 640]
    return torch.from_numpy(crops).float()[None], torch.from_numpy(mfcc(audio)[:300]).float()[None]


def _calibrated(p: np.ndarray, shift: float) -> np.ndarray:
    """σ(logit p + shift), by hand."""
    return 1.0 / (1.0 + (1.0 - p) / p * np.exp(-shift))


def test_calibration_is_a_logit_shift():
    from syncasd.models.ensemble import _shifted

    p = torch.tensor([0.1, 0.25, 0.5, 0.9])
    out = _shifted(p.log(), 1.0).softmax(-1)[..., 1].numpy()
    # σ(logit 0.25 + 1) = 1 / (1 + 3/e) = 0.4754
    np.testing.assert_allclose(out, _calibrated(p.numpy(), 1.0), rtol=1e-6)
    assert out[1] == pytest.approx(0.47536, abs=1e-5)
    assert np.all(np.diff(out) > 0)  # monotone: rankings are kept


@needs_shared
def test_probability_is_the_geometric_mean_of_the_two_models(inputs):
    pair = load_model("sync-light-asd-ensemble")
    ava, ours = load_model("light-asd", weights=AVA), load_model("sync-light-asd")
    with torch.inference_mode():
        p, pa, ps = (m.predict(*inputs).double().numpy() for m in (pair, ava, ours))
    assert p.shape == (1, 75)
    np.testing.assert_allclose(p, np.sqrt(pa * ps), atol=1e-5)
    # The two disagree on this clip somewhere, so the pair is neither of them.
    assert np.abs(pa - ps).max() > 0.1


def test_compose_refuses_models_with_different_stems():
    torch.manual_seed(0)
    a, b = LightASD().state_dict(), LightASD().state_dict()
    with pytest.raises(WeightsError, match="visual stems differ"):
        compose(a, b)
    state = compose(a, {**b, **{k: v for k, v in a.items() if "block1" in k or "block2" in k}})
    SyncGatedLightASD().load_state_dict(state, strict=True)


@needs_shared
def test_onnx_runtime_agrees_and_it_serves_as_a_sync_backend(inputs, tmp_path):
    from syncasd.models.onnx import to_ort
    from syncasd.offsets import ASDOffsets

    pair = load_model("sync-light-asd-ensemble")
    ort = to_ort(pair, "sync-light-asd-ensemble", tmp_path)
    with torch.inference_mode():
        expected = pair.frame_logits(*inputs).numpy()
    np.testing.assert_allclose(ort.frame_logits(*inputs), expected, atol=1e-4)
    crops = inputs[0][0].numpy().astype(np.uint8)
    audio = np.load(FIXTURES / "inputs" / "clip014_audio16k_int16.npy")[: 75 * 640]
    matrix = ASDOffsets(pair, max_offset=2)(crops, audio)
    assert matrix.shape == (5, 75)
    # Row 0 is the clip's score; not to 1e-4, because past the audio's end the backend reads
    # digital silence where python_speech_features pads its last windows, and the backward
    # GRU carries that difference through the clip (measured ≤ 0.002, 0.009 on the frame
    # next to the end). The rows are the backend's p, before the output's calibration.
    with torch.inference_mode():
        score = pair.speaking_log_prob(*inputs)[0].exp().numpy()
    np.testing.assert_allclose(matrix[2, :-3], score[:-3], atol=0.003)
    np.testing.assert_allclose(matrix[2, -3:], score[-3:], atol=0.02)


def test_the_composed_models_are_views_of_one_bundled_file():
    from syncasd.models.ensemble import LipGatedLightASD, SyncPair
    from syncasd.models.light_syncnet import LightSyncNet

    gated = load_model("sync-light-asd-gated")
    assert isinstance(gated, LipGatedLightASD)
    whole = torch.load(WEIGHTS_DIR / "sync_light_asd_gated.pt", weights_only=True)
    assert gated.state_dict().keys() == {k for k in whole if not k.startswith(("pair.", "talk."))}
    talk = load_model("sync-light-talknet-gated").state_dict()
    # Its attention half stores no visual encoder of its own: `asd.`'s is read twice.
    shared = [k for k in talk if k.startswith("sync.model.visualEncoder.")]
    assert shared and all(torch.equal(talk[k], whole[f"asd{k[4:]}"]) for k in shared)
    assert len(talk) == sum(k.startswith(("asd.", "talk.", "lips.")) for k in whole) + len(shared)
    triple = load_model("sync-light-asd-talknet-gated").state_dict()
    in_file = sum(k.startswith(("asd.", "sync.", "talk.", "lips.")) for k in whole)
    assert len(triple) == in_file + len(shared)
    assert all(torch.equal(triple[f"talk{k[4:]}"], talk[k]) for k in talk if k.startswith("sync."))
    parts = {
        "sync-light-asd": ("sync.",),
        "light-syncnet": ("lips.",),
        "sync-light-asd-ensemble": ("asd.", "sync."),
        "sync-pair": ("pair.", "lips."),  # its `asd.` is stage 3's sync-light-asd
    }
    for name, prefixes in parts.items():
        state = load_model(name).state_dict()
        assert len(state) == sum(k.startswith(prefixes) for k in whole), name
    pair = load_model("sync-pair")
    assert isinstance(pair, SyncPair) and isinstance(pair.lips, LightSyncNet)
    assert all(torch.equal(v, whole[f"pair.{k}"]) for k, v in pair.asd.state_dict().items())
    assert all(torch.equal(v, whole[f"lips.{k}"]) for k, v in pair.lips.state_dict().items())
    ensemble = load_model("sync-light-asd-ensemble").state_dict()
    assert all(torch.equal(v, whole[k]) for k, v in ensemble.items())
    # The composed models share the default's file; IC-SyncNet, trained apart, has its own.
    shipped = sorted(p.name for p in WEIGHTS_DIR.glob("*.pt"))
    assert shipped == ["ic_syncnet.pt", "sync_light_asd_gated.pt"]


# --- the default: the ensemble × light-syncnet's lip-sync gate --------------------------------


def _evidence_by_hand(
    lips, video: torch.Tensor, mfcc_rows: torch.Tensor, p: np.ndarray
) -> np.ndarray:
    """The gate's evidence e(t) of light-syncnet's embeddings (`_evidence_of`)."""
    with torch.inference_mode():
        v = lips.visual_embeddings(video)[0].numpy().astype(np.float64)
        a = lips.audio_embeddings(mfcc_rows)[0].numpy().astype(np.float64)
    return _evidence_of(v, a, lips.temperature.item(), p)


def _evidence_of(v: np.ndarray, a: np.ndarray, tau: float, p: np.ndarray) -> np.ndarray:
    """The gate's evidence e(t) written out frame by frame, offset by offset (numpy), from
    each frame's lip embedding v[t] and the voice embedding a[u] heard with it at u = t + k."""
    from syncasd.models.ensemble import GATE_MAX_OFFSET as K
    from syncasd.models.ensemble import GATE_NEAR, GATE_SIGMA

    t = len(v)
    half = int(np.ceil(3 * GATE_SIGMA))
    evidence = []
    for now in range(t):
        curve = []
        for k in range(-K, K + 1):
            frames = [i for i in range(t) if 0 <= i + k < t and abs(i - now) <= half]
            w = np.exp(-0.5 * ((np.array(frames) - now) / GATE_SIGMA) ** 2) * (p[frames] + 1e-3)
            z = np.array([v[i] @ a[i + k] for i in frames]) / tau
            curve.append((w * z).sum() / w.sum())
        curve = np.array(curve)
        evidence.append(curve[K - GATE_NEAR : K + GATE_NEAR + 1].max() - np.median(curve))
    return np.array(evidence)


@needs_shared
def test_gated_probability_is_the_ensemble_times_the_lip_gate(inputs):
    from syncasd.models.ensemble import GATE_CENTRE, GATE_SLOPE, LipGatedLightASD

    gated, ensemble = load_model("sync-light-asd-gated"), load_model("sync-light-asd-ensemble")
    assert isinstance(gated, LipGatedLightASD)
    with torch.inference_mode():
        p, p_ens = gated.predict(*inputs), ensemble.predict(*inputs)
    p_ens = p_ens[0].double().numpy()
    e = _evidence_by_hand(gated.lips, *inputs, p_ens)
    gate = 1.0 / (1.0 + np.exp(-GATE_SLOPE * (e - GATE_CENTRE)))
    expected = _calibrated(p_ens * gate, gated.decision_shift)
    np.testing.assert_allclose(p[0].numpy(), expected, atol=1e-5, rtol=1e-4)
    # This clip is in sync: the gate lets it through nearly whole, all along.
    assert e.min() > 1.4 and gate.min() > 0.8


def _voices() -> dict[str, np.ndarray]:
    """3 s of audio for VASP ID1/014's lips: its own voice, ID10/017's, its own 8 frames late."""
    from syncasd.media import read_audio

    own = np.load(FIXTURES / "inputs" / "clip014_audio16k_int16.npy")
    other = read_audio(DATA / "clips" / "vasp" / "ID10" / "017.mp4")[: 75 * 640]
    late = np.concatenate([np.zeros(8 * 640, np.int16), own])[: 75 * 640]
    return {"own": own[: 75 * 640], "other": other, "late": late}


def _evidence(gated, video: torch.Tensor, audio: np.ndarray) -> np.ndarray:
    rows = torch.from_numpy(mfcc(audio)[:300]).float()[None]
    with torch.inference_mode():
        return gated.sync_evidence(video, rows, torch.ones(1, video.shape[1]))[0].numpy()


@needs_shared
def test_the_gate_closes_on_another_voice_and_on_a_shifted_one(inputs):
    gated = load_model("sync-light-asd-gated")
    e = {name: _evidence(gated, inputs[0], audio) for name, audio in _voices().items()}
    assert np.median(e["own"]) > 1.5
    assert np.median(e["other"]) < 0.5 and np.median(e["late"]) < 0.5


@needs_shared
def test_the_gate_follows_a_change_of_voice_within_a_window(inputs):
    """The first 1.5 s in the face's own voice, the rest in another's: a conversation turn."""
    gated = load_model("sync-light-asd-gated")
    voices = _voices()
    turn = np.concatenate([voices["own"][: 37 * 640], voices["other"][37 * 640 :]])
    e = _evidence(gated, inputs[0], turn)
    # Measured: 1.82 at the start, 0.48 at the change (frame 37), about 0 from 0.5 s after it.
    assert e[:12].min() > 1.0  # its own turn, half a second or more before the change
    assert e[50:].max() < 0.25  # another's turn, half a second or more after it
    assert 30 <= np.flatnonzero(e < 0.5)[0] <= 44  # it crosses the middle near the change


@needs_shared
def test_the_bundled_gated_checkpoint_is_the_five_composed(tmp_path):
    """Rebuilt from Light-ASD's AVA file and the bundled `sync.`, `lips.`, `pair.` and
    `talk.` parts: so the `asd.` part is the AVA checkpoint, bit for bit, and the key tree is
    what compose makes. sync-pair reads its own sync-light-asd (`pair.`), not the default's
    (`sync.`). An attention half whose visual encoder is not the AVA one is refused."""
    from syncasd.models.ensemble import write_gated_checkpoint

    parts = {
        "sync": load_model("sync-light-asd").state_dict(),
        "lips": load_model("light-syncnet").state_dict(),
        "pair": load_model("sync-pair").asd.state_dict(),
    }
    talk = load_model("sync-light-talknet-gated").sync.state_dict()
    for name, state in parts.items():
        torch.save(state, tmp_path / f"{name}.pt")
    torch.save(talk, tmp_path / "talk.pt")
    files = [tmp_path / f"{name}.pt" for name in parts]
    out = write_gated_checkpoint(AVA, *files, tmp_path / "g.pt", tmp_path / "talk.pt")
    made = torch.load(out, weights_only=True)
    bundled = torch.load(WEIGHTS_DIR / "sync_light_asd_gated.pt", weights_only=True)
    assert made.keys() == bundled.keys()
    assert all(torch.equal(made[k], bundled[k]) for k in made)
    assert {k.split(".")[0] for k in made} == {"asd", "sync", "lips", "pair", "talk"}
    differ = [k for k in parts["pair"] if not torch.equal(parts["pair"][k], parts["sync"][k])]
    assert differ and all(not k.startswith(LightASD.stem_modules) for k in differ)
    key = next(k for k in talk if k.startswith("model.visualEncoder.") and "weight" in k)
    torch.save(talk | {key: talk[key] + 0.01}, tmp_path / "talk.pt")
    with pytest.raises(WeightsError, match="not light-asd.ava's"):
        write_gated_checkpoint(AVA, *files, tmp_path / "h.pt", tmp_path / "talk.pt")
    assert not (tmp_path / "h.pt").exists()


def test_a_file_in_the_bundled_layout_loads_as_weights_of_each_part():
    """`write_gated_checkpoint`'s output passed as --weights: each model takes its own part,
    as from the bundled file; a model's own plain state dict still loads as it is."""
    bundled = WEIGHTS_DIR / "sync_light_asd_gated.pt"
    names = ("sync-light-asd-gated", "sync-light-asd-ensemble", "sync-light-asd", "sync-pair")
    for name in (*names, "sync-light-talknet-gated", "sync-light-asd-talknet-gated"):
        given, shipped = (load_model(name, w).state_dict() for w in (bundled, None))
        assert given.keys() == shipped.keys(), name
        assert all(torch.equal(v, shipped[k]) for k, v in given.items()), name
    pair = load_model("sync-pair", weights=bundled).asd.state_dict()
    default = load_model("sync-light-asd").state_dict()
    assert any(not torch.equal(pair[k], default[k]) for k in pair)  # pair. is not sync.


@needs_shared
@pytest.mark.parametrize(
    "name", ["sync-light-asd-talknet-gated", "sync-light-asd-gated", "sync-light-talknet-gated"]
)
def test_gated_onnx_runtime_agrees(inputs, tmp_path, name):
    from syncasd.models.onnx import to_ort

    gated = load_model(name)
    ort = to_ort(gated, name, tmp_path)
    # A window shorter than the ±15 frames searched, and one longer than the ±25-frame band.
    video = torch.cat([inputs[0], inputs[0].flip(1)], 1)
    mfcc_rows = torch.cat([inputs[1], inputs[1].flip(1)], 1)
    for n in (150, 75, 20):
        video_n, rows = video[:, :n], mfcc_rows[:, : 4 * n]
        with torch.inference_mode():
            expected = gated.frame_logits(video_n, rows).numpy()
        np.testing.assert_allclose(ort.frame_logits(video_n, rows), expected, atol=1e-4)


# --- the conversation model: the default with an attention half -------------------------------


@needs_shared
def test_talk_gated_probability_is_the_asd_and_attention_mean_times_the_lip_gate(inputs):
    """p = σ(logit(√(p_asd · p_talk) · gate) + shift), each part computed apart: light-asd.ava,
    a light-talknet-band from the bundled file's `talk.` subtree plus the AVA visual encoder,
    and the gate's evidence by hand."""
    from syncasd.models.ensemble import GATE_CENTRE, GATE_SLOPE, TalkLipGatedLightASD
    from syncasd.models.light_talknet import LightTalkNet

    model = load_model("sync-light-talknet-gated")
    assert isinstance(model, TalkLipGatedLightASD) and model.sync.model.selfAV.band == 25
    # One visual encoder serves both halves: held once, run once.
    assert model.sync.model.visualEncoder is model.asd.model.visualEncoder
    assert 3.4e6 < sum(p.numel() for p in model.parameters()) < 3.6e6
    whole = torch.load(WEIGHTS_DIR / "sync_light_asd_gated.pt", weights_only=True)
    ava = load_model("light-asd", weights=AVA)
    talk = LightTalkNet(band=25)
    talk_state = {k[5:]: v for k, v in whole.items() if k.startswith("talk.")}
    encoder = {k: v for k, v in ava.state_dict().items() if k.startswith("model.visualEncoder.")}
    talk.load_state_dict(talk_state | encoder, strict=True)
    talk.eval()
    with torch.inference_mode():
        p = model.predict(*inputs)[0].double().numpy()
        pa, pt = (m.predict(*inputs)[0].double().numpy() for m in (ava, talk))
    both = np.sqrt(pa * pt)
    e = _evidence_by_hand(model.lips, *inputs, both)
    gate = 1.0 / (1.0 + np.exp(-GATE_SLOPE * (e - GATE_CENTRE)))
    np.testing.assert_allclose(p, _calibrated(both * gate, model.decision_shift), atol=1e-5)
    # The attention half is not the default's BiGRU half: the two models differ here.
    default = load_model("sync-light-asd-gated")
    with torch.inference_mode():
        assert np.abs(default.predict(*inputs)[0].double().numpy() - p).max() > 1e-3


# --- the default since stop 29: the three halves × the lip gate -------------------------------


@needs_shared
def test_the_triple_is_the_three_halves_geometric_mean_times_the_lip_gate(inputs):
    """`sync-light-asd-talknet-gated` (the default until stop 42): p = σ(logit(∛(p_asd ·
    p_sync · p_talk) · gate) + shift), each part computed apart: light-asd.ava,
    sync-light-asd, the conversation model's attention half, and the gate's evidence by hand;
    the attention half's visual encoder is `asd`'s, one module."""
    from syncasd.models.ensemble import GATE_CENTRE, GATE_SLOPE, TripleGatedLightASD

    model = load_model("sync-light-asd-talknet-gated")
    assert isinstance(model, TripleGatedLightASD)
    assert model.talk.model.visualEncoder is model.asd.model.visualEncoder
    ava = load_model("light-asd", weights=AVA)
    sync = load_model("sync-light-asd")
    talk = load_model("sync-light-talknet-gated").sync
    with torch.inference_mode():
        p = model.predict(*inputs)[0].double().numpy()
        parts = [m.predict(*inputs)[0].double().numpy() for m in (ava, sync, talk)]
    mean = np.cbrt(parts[0] * parts[1] * parts[2])
    e = _evidence_by_hand(model.lips, *inputs, mean)
    gate = 1.0 / (1.0 + np.exp(-GATE_SLOPE * (e - GATE_CENTRE)))
    np.testing.assert_allclose(p, _calibrated(mean * gate, model.decision_shift), atol=1e-5)
    # Its embeddings are the three halves' side by side, the visual one twice.
    with torch.inference_mode():
        visual = model.visual_embeddings(inputs[0])
    assert visual.shape[-1] == 3 * 128 and torch.equal(visual[..., :128], visual[..., 256:])


def test_gate_evidence_is_the_peak_near_zero_minus_the_median():
    # Offsets -3..3: the maximum within ±2 is 5 (offset 0), the median of the seven is 1.
    curve = torch.tensor([0.0, 1.0, 2.0, 5.0, 1.0, 0.0, -1.0])[None, :, None]
    assert gate_evidence(curve).tolist() == [[4.0]]
    # A peak at offset 3, outside ±2, is not counted: max(0, 1, 2, 1, 0) − median 1 = 1.
    shifted = torch.tensor([-1.0, 0.0, 1.0, 2.0, 1.0, 0.0, 5.0])[None, :, None]
    assert gate_evidence(shifted).tolist() == [[1.0]]


def test_gate_curves_average_each_offset_over_the_weighted_frames_around():
    logits = torch.tensor([[[2.0, 4.0], [1.0, 1.0], [0.0, 6.0]]])  # (1, 3 offsets, 2 frames)
    # The two frames are 1 apart, so each sees the other at Gaussian weight g; the second frame
    # has (almost) no speaking probability, so only the floor of 1e-3 weighs it.
    g = float(np.exp(-0.5 / 18.75**2))
    w0, w1 = 1.0 + 1e-3, 1e-3
    curve = gate_curves(logits, torch.tensor([[1.0, 0.0]]))
    expected_t0 = (w0 * logits[0, :, 0] + g * w1 * logits[0, :, 1]) / (w0 + g * w1)
    expected_t1 = (g * w0 * logits[0, :, 0] + w1 * logits[0, :, 1]) / (g * w0 + w1)
    torch.testing.assert_close(curve[0, :, 0], expected_t0)
    torch.testing.assert_close(curve[0, :, 1], expected_t1)
    # An offset no frame reaches (valid 0 throughout) takes the mean of the others.
    valid = torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    filled = gate_curves(logits, torch.tensor([[1.0, 1.0]]), valid)
    torch.testing.assert_close(filled[0, 2], filled[0, :2].mean(0))


# --- the default's ensemble × ic-syncnet's lip gate -------------------------------------------

ICGATED = "sync-light-asd-talknet-icgated"


def _with_mel(audio: np.ndarray, frames: int) -> torch.Tensor:
    """(1, 4T − 1, 13 + 80): what `detect` feeds a model that reads the log-mel."""
    from syncasd.audio import asd_features

    return torch.from_numpy(asd_features(audio, with_mel=True)[: 4 * frames]).float()[None]


def _ic_embeddings_by_hand(lips, crops: np.ndarray, features: np.ndarray, contrast):
    """IC-SyncNet's embeddings of each frame's five mouths (t − 2 … t + 2, the ends repeated;
    each mouth moved to gray mean and standard deviation `contrast`) and of the 0.4 s
    window centred on each frame, its 80-Hz columns read by hand between the 100-Hz ones
    (silence outside): (T, D), (T, D), float64."""
    from syncasd.audio import MEL_SILENCE, MFCC_WIDTH, mel_window_start
    from syncasd.models.icsyncnet import mouth_crops

    t = len(crops)
    mouths = mouth_crops(crops, lips.dims)[:, 0].astype(np.float64)
    centre = mouths.mean(axis=(1, 2), keepdims=True)
    spread = np.maximum(mouths.std(axis=(1, 2), ddof=1, keepdims=True), 4.0)
    mouths = np.clip(contrast[0] + (mouths - centre) * contrast[1] / spread, 0, 255)
    images = np.stack([mouths[np.clip(np.arange(i - 2, i + 3), 0, t - 1)] for i in range(t)])
    mel = features[:, MFCC_WIDTH:].T.astype(np.float64)

    def column(c: int) -> np.ndarray:
        x = 1.25 * c
        i = int(np.floor(x))
        at = [mel[:, j] if 0 <= j < mel.shape[1] else np.full(80, MEL_SILENCE) for j in (i, i + 1)]
        return (1 - (x - i)) * at[0] + (x - i) * at[1]

    windows = np.stack(
        [np.stack([column(mel_window_start(c - 2) + j) for j in range(32)], 1) for c in range(t)]
    )
    with torch.inference_mode():
        v = lips.visual_embeddings(torch.from_numpy(images).float())
        a = lips.audio_embeddings(torch.from_numpy(windows).float())
    return v.double().numpy(), a.double().numpy()


@needs_shared
def test_the_ic_gated_model_is_the_three_halves_times_ic_syncnets_gate(inputs):
    """p = σ(logit(∛(p_asd · p_sync · p_talk) · gate) + shift), the gate's evidence by hand from
    IC-SyncNet's embeddings of OpenCV-resized mouths and hand-interpolated log-mel windows."""
    from syncasd.models.ensemble import MelGatedLightASD
    from syncasd.models.icsyncnet import ICSyncNet

    assert DEFAULT_MODEL == ICGATED  # the default since stop 42
    model = load_model(ICGATED)
    assert isinstance(model, MelGatedLightASD) and isinstance(model.lips, ICSyncNet)
    assert model.reads_mel and 5.1e6 < sum(p.numel() for p in model.parameters()) < 5.3e6
    audio = np.load(FIXTURES / "inputs" / "clip014_audio16k_int16.npy")[: 75 * 640]
    features = _with_mel(audio, 75)
    # Its MFCC columns are the default's input: the three halves read only those.
    np.testing.assert_array_equal(features[..., :13].numpy(), inputs[1].numpy())
    halves = (load_model("light-asd", weights=AVA), load_model("sync-light-asd"))
    halves += (load_model("sync-light-talknet-gated").sync,)
    with torch.inference_mode():
        p = model.predict(inputs[0], features)[0].double().numpy()
        parts = [m.predict(*inputs)[0].double().numpy() for m in halves]
    mean = np.cbrt(parts[0] * parts[1] * parts[2])
    crops = inputs[0][0].numpy().astype(np.uint8)
    v, a = _ic_embeddings_by_hand(model.lips, crops, features[0].numpy(), model.mouth_contrast)
    e = _evidence_of(v, a, model.lips.temperature.item(), mean)
    gate = 1.0 / (1.0 + np.exp(-model.gate_slope * (e - model.gate_centre)))
    np.testing.assert_allclose(p, _calibrated(mean * gate, model.decision_shift), atol=1e-4)
    # This clip is in sync: the gate lets it through nearly whole, all along.
    assert e.min() > 1.4 and gate.min() > 0.8


@needs_shared
def test_the_ic_gate_closes_on_another_voice_and_on_a_shifted_one(inputs):
    model = load_model(ICGATED)
    e = {}
    for name, audio in _voices().items():
        with torch.inference_mode():
            weights = torch.ones(1, 75)
            e[name] = model.sync_evidence(inputs[0], _with_mel(audio, 75), weights)[0].numpy()
    gate = {
        k: 1.0 / (1.0 + np.exp(-model.gate_slope * (x - model.gate_centre))) for k, x in e.items()
    }
    # Measured (mouths standardised): evidence median 1.97 (own), 0.47 (other), 0.36 (8 frames
    # late); gates 0.98 (0.88 at least), 0.14, 0.09.
    assert np.median(e["own"]) > 1.5 and gate["own"].min() > 0.85
    assert np.median(gate["other"]) < 0.15 and np.median(gate["late"]) < 0.35


def test_the_ic_gated_model_is_the_bundled_file_and_ic_syncnets():
    """Its `lips.` are the bundled ic-syncnet, the rest the default's; the bundled file given
    as weights loads the same, completed by ic-syncnet's published file."""
    model = load_model(ICGATED).state_dict()
    ic = load_model("ic-syncnet").state_dict()
    default = load_model("sync-light-asd-talknet-gated").state_dict()
    assert {k for k in model if k.startswith("lips.")} == {f"lips.{k}" for k in ic}
    assert all(torch.equal(model[f"lips.{k}"], v) for k, v in ic.items())
    rest = {k for k in model if not k.startswith("lips.")}
    assert rest == {k for k in default if not k.startswith("lips.")}
    assert all(torch.equal(model[k], default[k]) for k in rest)
    given = load_model(ICGATED, WEIGHTS_DIR / "sync_light_asd_gated.pt").state_dict()
    assert given.keys() == model.keys() and all(torch.equal(v, model[k]) for k, v in given.items())


@needs_shared
def test_ic_gated_onnx_runtime_agrees(inputs, tmp_path):
    from syncasd.models.onnx import to_ort

    model = load_model(ICGATED)
    ort = to_ort(model, ICGATED, tmp_path)
    assert ort.reads_mel
    audio = np.load(FIXTURES / "inputs" / "clip014_audio16k_int16.npy")[: 75 * 640]
    video = torch.cat([inputs[0], inputs[0].flip(1)], 1)
    rows = _with_mel(audio, 75)
    rows = torch.cat([rows, rows[:, :1], rows.flip(1)], 1)  # 4 rows per frame
    for n in (150, 75, 20):
        video_n, rows_n = video[:, :n], rows[:, : 4 * n]
        with torch.inference_mode():
            expected = model.frame_logits(video_n, rows_n).numpy()
        np.testing.assert_allclose(ort.frame_logits(video_n, rows_n), expected, atol=1e-4)


def test_the_ic_gated_models_own_state_dict_loads_whole(tmp_path):
    """A state dict of the whole model as --weights keeps its own `lips.`: the published
    ic-syncnet completes only a file in the bundled layout, which lacks them."""
    state = load_model(ICGATED).state_dict()
    key = next(k for k in state if k.startswith("lips.") and k.endswith("weight"))
    torch.save(state | {key: state[key] + 1.0}, tmp_path / "own.pt")
    loaded = load_model(ICGATED, tmp_path / "own.pt").state_dict()
    assert torch.equal(loaded[key], state[key] + 1.0)
