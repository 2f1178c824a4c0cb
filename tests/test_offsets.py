"""The ASD sync backend on the real crops and audio of VASP ID1/014 (parity fixtures).

Light-ASD with its AVA weights is not synchronization-aware, so these tests check what holds
for any model: the matrix's shape, that its zero-shift row is `detect`'s score, that delaying
the audio moves the rows, that outside the file means silence.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import DATA, FIXTURES, needs_shared

from syncasd.audio import mfcc
from syncasd.errors import InputError
from syncasd.models import load_model
from syncasd.offsets import ASDOffsets, padded_features, windows
from syncasd.scoring import ChunkScorer

pytestmark = needs_shared

K = 4  # 9 shifts: enough to see every property, cheap on a CPU
SPF = 640  # audio samples per frame


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return load_model("light-asd", weights=DATA / "weights" / "light_asd_ava.model")


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    return np.load(FIXTURES / "inputs" / "clip014_gray112.npy")  # (251, 112, 112)


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    return np.load(FIXTURES / "inputs" / "clip014_audio16k_int16.npy")  # 10.05 s


def detect_scores(
    model, crops: np.ndarray, audio: np.ndarray, first: int, window: int = 150
) -> np.ndarray:
    """What `detect` scores for a track at `first`: whole-file MFCC, chunk windows (6 s)."""
    scorer = ChunkScorer(model, mfcc(audio), first, window=window, context=window // 6)
    scorer.push(crops)
    return scorer.finish()[1]


@pytest.mark.parametrize("n", [1, 59, 149, 150, 151, 251, 400, 525])
def test_windows_cover_every_frame_once_like_the_chunk_scorer(n):
    spans = list(windows(n))
    kept = np.concatenate([np.arange(keep, stop) for _, _, keep, stop in spans])
    assert kept.tolist() == list(range(n))
    for a, b, keep, stop in spans:
        assert a <= keep < stop <= b <= n
        assert b - a == 150 or b == n  # full windows, and a shorter last one
    # Consecutive windows overlap by twice the context.
    for (_, b0, _, _), (a1, _, _, _) in zip(spans, spans[1:], strict=False):
        assert b0 - a1 == 50


def test_padded_features_equal_the_whole_file_mfcc(audio):
    plain = mfcc(audio)
    padded = padded_features(audio, K)
    # Equal up to float64 rounding (numpy may sum a longer array in another order).
    assert np.allclose(padded[4 * K : 4 * K + len(plain)], plain, rtol=1e-12, atol=1e-9)
    silence = mfcc(np.zeros(SPF * K, np.int16))
    assert np.allclose(padded[1 : 4 * K - 2], silence[1 : 4 * K - 2])


def test_matrix_shape_and_zero_shift_is_the_detect_score_short_track(model, crops, audio):
    # 100 frames (4 s): one scoring window, as `detect` scores any track shorter than 6 s.
    first, n = 30, 100
    m = ASDOffsets(model, K)(crops[first : first + n], audio, first)
    assert m.shape == (2 * K + 1, n) and m.dtype == np.float32
    assert 0.0 <= m.min() and m.max() <= 1.0
    expected = detect_scores(model, crops[first : first + n], audio, first)
    assert np.abs(m[K] - expected).max() < 1e-5


def test_zero_shift_is_the_detect_score_across_windows(model, crops, audio):
    # A track longer than a window: three overlapping windows, the same as detect's (2.4 s
    # windows with 0.4 s of context here, as `detect --window 2.4` makes them, to be quick).
    m = ASDOffsets(model, 1, window=60, context=10)(crops[5:135], audio, 5)
    assert m.shape == (3, 130)
    assert len(list(windows(130, 60, 10))) == 3
    expected = detect_scores(model, crops[5:135], audio, 5, window=60)
    assert np.abs(m[1] - expected).max() < 1e-5


@pytest.mark.parametrize("d", [3, -2])
def test_delaying_the_audio_moves_the_rows(model, crops, audio, d):
    """Audio delayed by d frames: row k of the new matrix is row k - d of the original."""
    first, n = 40, 60
    if d > 0:
        moved = np.concatenate([np.zeros(SPF * d, np.int16), audio[: -SPF * d]])
    else:
        moved = np.concatenate([audio[SPF * -d :], np.zeros(SPF * -d, np.int16)])
    backend = ASDOffsets(model, K)
    before = backend(crops[first : first + n], audio, first)
    after = backend(crops[first : first + n], moved, first)
    rows = range(max(-K, -K + d), min(K, K + d) + 1)  # k with k - d also searched
    for k in rows:
        assert np.abs(after[k + K] - before[k - d + K]).max() < 1e-5, k
    assert np.abs(after - before).max() > 0.05  # it did move


def test_shifted_is_the_signal_later_or_earlier_at_the_same_length():
    from syncasd.offsets import shifted

    x = np.array([5, -3, 7, 2], np.int16)
    assert shifted(x, 0).tolist() == [5, -3, 7, 2]
    assert shifted(x, 1).tolist() == [0, 5, -3, 7]
    assert shifted(x, 3).tolist() == [0, 0, 0, 5]
    assert shifted(x, 9).tolist() == [0, 0, 0, 0] and shifted(x, 9).dtype == np.int16
    assert shifted(x, -1).tolist() == [-3, 7, 2, 0]


def test_an_audio_delay_moves_the_rows_by_as_many_frames(model, crops, audio):
    """A backend told its weights' clips had their audio one frame late reads every row one
    offset later: row k is the plain backend's row k - 1."""
    first, n = 40, 60
    plain, lagged = ASDOffsets(model, K), ASDOffsets(model, K)
    lagged.audio_delay = SPF
    before = plain(crops[first : first + n], audio, first)
    after = lagged(crops[first : first + n], audio, first)
    for k in range(-K + 1, K + 1):
        assert np.abs(after[k + K] - before[k - 1 + K]).max() < 1e-5, k


def test_the_registry_knows_which_weights_read_in_sync_footage_early(tmp_path):
    """Ours were trained on clips whose audio lies one frame late (docs/sync.md, "The training
    clips' clock"); the peers' and unknown files get no delay."""
    from syncasd.models import audio_lag_ms
    from syncasd.models.zoo import BUNDLED_FILE, WEIGHTS_DIR
    from syncasd.offsets import offset_backend

    for ours in ("sync-pair", "light-syncnet", "ic-syncnet", "sync-light-asd-talknet-gated"):
        assert audio_lag_ms(ours) == 40.0, ours
    assert audio_lag_ms("sync-pair", WEIGHTS_DIR / BUNDLED_FILE) == 40.0  # the same file
    other = tmp_path / "own.pt"
    other.write_bytes(b"not the bundled file")
    assert audio_lag_ms("sync-pair", other) == 0.0
    for peer in ("light-asd", "lr-asd.talkset", "syncnet-v2", "talknet"):
        assert audio_lag_ms(peer) == 0.0, peer
    assert offset_backend("sync-pair").audio_delay == SPF
    assert offset_backend("sync-pair", audio_lag_ms=0).audio_delay == 0
    peer = offset_backend("light-asd", str(DATA / "weights" / "light_asd_ava.model"))
    assert peer.audio_delay == 0
    with pytest.raises(InputError, match="≥ 0 ms"):
        offset_backend("light-syncnet", audio_lag_ms=-40)


def test_outside_the_file_is_silence(model, crops, audio):
    # A track at frame 0: shift -k reads k frames before the file. Same as a file that starts
    # with K frames of digital silence and the track K frames later.
    n = 40
    backend = ASDOffsets(model, K)
    at_start = backend(crops[:n], audio, 0)
    padded = np.concatenate([np.zeros(SPF * K, np.int16), audio])
    assert np.abs(at_start - backend(crops[:n], padded, K)).max() < 1e-5


def test_shift_batches_do_not_change_the_result(model, crops, audio):
    one = ASDOffsets(model, K, batch=2)(crops[:50], audio, 10)
    all_ = ASDOffsets(model, K, batch=32)(crops[:50], audio, 10)
    assert np.abs(one - all_).max() < 1e-5


def test_silence_gives_low_probabilities_at_every_shift(model, crops):
    m = ASDOffsets(model, K)(crops[:50], np.zeros(SPF * 60, np.int16), 0)
    assert m.max() < 0.1


def test_refuses_models_and_ranges_it_cannot_use(model, crops, audio):
    with pytest.raises(InputError, match="visual_embeddings"):
        ASDOffsets(torch.nn.Linear(2, 2))
    with pytest.raises(InputError, match="max offset"):
        ASDOffsets(model, 101)
    with pytest.raises(InputError, match="max offset"):
        ASDOffsets(model, -1)
    backend = ASDOffsets(model, K)
    with pytest.raises(InputError, match="past the end of the audio"):
        backend(crops[:20], audio[: SPF * 5], 200)
    with pytest.raises(InputError, match="crops"):
        backend(crops[0], audio, 0)


def test_icsyncnet_matrix_is_the_model_on_each_window_and_offset(crops, audio):
    from syncasd.audio import log_mel, mel_window
    from syncasd.models.icsyncnet import ICSyncNet, mouth_crops
    from syncasd.offsets import ICSyncOffsets

    torch.manual_seed(0)
    model = ICSyncNet.from_config("cpu").eval()
    backend = ICSyncOffsets(model, K)
    first, n = 40, 30
    m = backend.matrix(crops[first : first + n], backend.features(audio), first)
    assert m.shape == (2 * K + 1, n) and m.dtype == np.float32
    whole = log_mel(audio)  # the padding is whole 5-frame blocks: the same columns
    mouths = torch.from_numpy(mouth_crops(crops[first : first + n], model.dims))
    for t, k in [(2, 0), (10, -K), (10, 3), (27, K)]:
        window = mouths[t - 2 : t + 3].flatten(0, 1)[None]
        mel = torch.from_numpy(mel_window(whole, first + t - 2 + k))[None, None]
        with torch.no_grad():
            expected = torch.sigmoid(model(window, mel))[0].item()
        assert abs(m[k + K, t] - expected) < 1e-5


def test_offset_backend_picks_the_backend_of_the_model_kind(tmp_path):
    from syncasd.models.icsyncnet import ICSyncNet
    from syncasd.offsets import ICSyncOffsets, offset_backend

    path = tmp_path / "ics.pt"
    torch.save(ICSyncNet.from_config("cpu").state_dict(), path)
    assert isinstance(offset_backend("ic-syncnet", str(path), 7), ICSyncOffsets)
    asd = offset_backend("light-asd", str(DATA / "weights" / "light_asd_ava.model"), 7)
    assert isinstance(asd, ASDOffsets) and asd.max_offset == 7
    with pytest.raises(InputError, match="needs an IC-SyncNet"):
        ICSyncOffsets(load_model("light-asd", weights=DATA / "weights" / "light_asd_ava.model"))


def _light_syncnet(seed: int = 0):
    from syncasd.models.light_syncnet import LightSyncNet

    torch.manual_seed(seed)
    model = LightSyncNet()
    for head in (model.visual_head, model.audio_head):  # non-trivial BatchNorm statistics
        head[1].running_mean.uniform_(-0.5, 0.5)
        head[1].running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_light_syncnet_matrix_is_the_embeddings_at_each_offset(crops, audio):
    from syncasd.audio import mfcc
    from syncasd.offsets import LightSyncOffsets, with_silence

    model = _light_syncnet()
    backend = LightSyncOffsets(model, K)
    first, n, c = 40, 30, LightSyncOffsets.AUDIO_CONTEXT
    m = backend.matrix(crops[first : first + n], backend.features(audio), first)
    assert m.shape == (2 * K + 1, n) and m.dtype == np.float32
    # By hand: the audio of frames first − K − C … first + n + K + C − 1 (all inside the
    # file), its embeddings without the C context frames, and σ(v_t · a_{t+k} / τ).
    pad = K + c
    assert np.array_equal(backend.features(audio), mfcc(with_silence(audio, pad, pad + 1)))
    rows = mfcc(audio[(first - pad) * SPF : (first + n + pad + 1) * SPF])[: 4 * (n + 2 * pad)]
    with torch.no_grad():
        v = model.visual_embeddings(torch.from_numpy(crops[first : first + n]).float()[None])[0]
        a = model.audio_embeddings(torch.from_numpy(rows).float()[None])[0, c : c + n + 2 * K]
        for t, k in [(0, 0), (3, -K), (17, 2), (29, K)]:
            expected = torch.sigmoid(v[t] @ a[t + K + k] / model.temperature).item()
            assert abs(m[k + K, t] - expected) < 1e-4


def test_light_syncnet_windows_and_silence_beyond_the_audio(crops, audio):
    from syncasd.offsets import LightSyncOffsets

    model = _light_syncnet(1)
    whole = LightSyncOffsets(model, K)
    windowed = LightSyncOffsets(model, K, window=60, context=10)
    features = whole.features(audio)
    a, b = whole.matrix(crops[:200], features, 20), windowed.matrix(crops[:200], features, 20)
    # Frames far from any window edge see the same context in both: equal; near an edge the
    # 10-frame context covers the encoders' reach (±6 visual, ±2 head), so close as well.
    assert np.abs(a - b).max() < 1e-4
    # A track that runs past the end of the audio reads silence there, and is refused if it
    # starts past it.
    tail = whole.matrix(crops[:40], features, 240)
    assert tail.shape == (2 * K + 1, 40)
    with pytest.raises(InputError, match="past the end of the audio"):
        whole.matrix(crops[:5], features, 400)
    with pytest.raises(InputError, match="needs a LightSyncNet"):
        LightSyncOffsets(load_model("light-asd", weights=DATA / "weights" / "light_asd_ava.model"))


def test_offset_backend_builds_light_syncnet_from_its_weights(tmp_path):
    from syncasd.offsets import LightSyncOffsets, offset_backend

    path = tmp_path / "lsn.pt"
    torch.save(_light_syncnet().state_dict(), path)
    backend = offset_backend("light-syncnet", str(path), 7)
    assert isinstance(backend, LightSyncOffsets) and backend.max_offset == 7


def test_sum_offsets_adds_the_backends_logits(model, crops, audio):
    from syncasd.offsets import LightSyncOffsets, SumOffsets

    asd, lips = ASDOffsets(model, K), LightSyncOffsets(_light_syncnet(), K)
    both = SumOffsets(asd, lips)
    first, n = 30, 40
    m = both.matrix(crops[first : first + n], both.features(audio), first)
    a = asd.matrix(crops[first : first + n], asd.features(audio), first).astype(np.float64)
    b = lips.matrix(crops[first : first + n], lips.features(audio), first).astype(np.float64)
    logit_sum = np.log(a / (1 - a)) + np.log(b / (1 - b))
    assert m.shape == (2 * K + 1, n)
    assert np.allclose(m, 1 / (1 + np.exp(-logit_sum)), atol=1e-5)
    with pytest.raises(InputError, match="one search range"):
        SumOffsets(asd, LightSyncOffsets(_light_syncnet(), K + 1))


# ---------------------------------------------------------------------------------------------
# SyncNet v2 as a sync backend (fixtures/syncnet: syncnet_python run with random weights)


@pytest.fixture(scope="module")
def syncnet_backend():
    from conftest import random_state_dict

    from syncasd.models.syncnet import SyncNetV2
    from syncasd.offsets import SyncNetOffsets

    net = SyncNetV2()
    net.load_state_dict(random_state_dict(FIXTURES / "syncnet" / "syncnet_random_manifest.json"))
    return SyncNetOffsets(net, max_offset=15)


def test_syncnet_backend_distances_are_syncnet_pythons(syncnet_backend):
    import cv2
    from scipy.io import wavfile

    frames = np.stack(
        [cv2.imread(str(p)) for p in sorted((FIXTURES / "syncnet" / "frames_jpg").glob("*.jpg"))]
    )
    audio = wavfile.read(FIXTURES / "inputs" / "clip014_audio16k.wav")[1]
    d = syncnet_backend.distances(frames, syncnet_backend.features(audio), 0)
    assert d.shape == (31, 251) and d.dtype == np.float32
    # The original's dists[i, j]: lip window i (frames i..i+4, centred on i + 2) against audio
    # window i + j − 15. Ours, row k = j − 15, column t = i + 2; compared where the original
    # reads real audio windows (it pads outside them with zero embeddings).
    ref = np.load(FIXTURES / "syncnet" / "syncnet_dists_vshift15.npy")  # (246, 31)
    i, j = np.meshgrid(np.arange(246), np.arange(31), indexing="ij")
    inside = (i + j - 15 >= 0) & (i + j - 15 < 246)
    ours = d[j, i + 2]
    np.testing.assert_allclose(ours[inside], ref[inside], rtol=1e-5)
    assert inside.sum() == 246 * 31 - 2 * (15 * 16 // 2)
    # Edge columns read the first (last) crop repeated: column 0's window is frames 0,0,0,1,2.
    assert not np.allclose(d[:, 0], d[:, 2])


def test_syncnet_probabilities_are_framewise_confidence_against_3():
    from syncasd.offsets import syncnet_probabilities

    d = np.array([[10.0, 7.0], [4.0, 7.0], [12.0, 1.0]])
    # Column medians 10 and 7 → confidences [0, 6, -2] and [0, 0, 6].
    expected = 1 / (1 + np.exp(-(np.array([[0.0, 0.0], [6.0, 0.0], [-2.0, 6.0]]) - 3.0)))
    np.testing.assert_allclose(syncnet_probabilities(d), expected, rtol=1e-6)
    assert syncnet_probabilities(d).dtype == np.float32


def test_syncnet_backend_refuses_gray_crops_and_tracks_past_the_audio(syncnet_backend, crops):
    features = syncnet_backend.features(np.zeros(640 * 20, np.int16))
    with pytest.raises(InputError, match="224, 224, 3"):
        syncnet_backend.matrix(crops[:10], features, 0)
    colour = np.zeros((10, 224, 224, 3), np.uint8)
    assert syncnet_backend.matrix(colour, features, 10).shape == (31, 10)
    with pytest.raises(InputError, match="past the end"):
        syncnet_backend.matrix(colour, features, 11)
