"""The sync pack and its device sampler, on a corpus written by hand (tracks of known frames)."""

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch

from syncasd.audio import MEL_SILENCE, log_mel, mel_window
from syncasd.data.corpus import CORPUS_VERSION, Corpus, CorpusTrack
from syncasd.data.syncpack import (
    PAD_FRAMES,
    PackSampler,
    SyncPack,
    audio_embedding_table,
    build_sync_pack,
    dequantise_mel,
    mel_from_steps,
    mel_steps,
    pack_matrices,
    quantise_mel,
)
from syncasd.data.syncpairs import SyncSampleConfig
from syncasd.errors import InputError
from syncasd.evaluate.syncacc import track_matrices
from syncasd.models.icsyncnet import CONFIGS, ICSyncNet, mouth_crops
from syncasd.offsets import ICSyncOffsets, with_silence

SPF = 640
# (split, frames, negative): two train tracks, a val track long enough for ±15, a negative.
TRACKS = (("train", 60, False), ("val", 50, False), ("train", 40, False), ("train", 30, True))


def _faces(n: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth gray faces whose lower half says which frame it is (H.264 keeps them well)."""
    y, x = np.mgrid[0:112, 0:112]
    out = np.empty((n, 112, 112), np.uint8)
    for t in range(n):
        cx = 30 + (t * 7) % 50
        blob = 90 * np.exp(-((x - cx) ** 2 + (y - 84) ** 2) / 300.0)
        out[t] = np.clip(60 + 0.5 * y + blob + rng.normal(0, 1, (112, 112)), 0, 255)
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    root = tmp_path_factory.mktemp("pack-corpus")
    rng = np.random.default_rng(0)
    n = sum(t[1] for t in TRACKS)
    entries, offset = [], 0
    for i, (split, length, negative) in enumerate(TRACKS):
        entries.append(
            CorpusTrack(f"v{i}", f"id{i}", split, f"v{i}.mp4", "0" * 64, offset, length, negative)
        )
        offset += length
    labels = np.zeros(n, bool)
    labels[5:30] = True  # track 0: frames 5..29 speak
    labels[60:110] = True  # track 1 (val): all 50 frames
    labels[110 + 10 : 110 + 30] = True  # track 2: frames 10..29
    np.save(root / "crops.npy", _faces(n, rng))
    np.save(root / "audio.npy", rng.integers(-3000, 3000, n * SPF).astype(np.int16))
    np.save(root / "labels.npy", labels)
    index = {"version": CORPUS_VERSION, "tracks": [asdict(t) for t in entries], "skipped": []}
    (root / "index.json").write_text(json.dumps(index))
    return Corpus(root)


@pytest.fixture(scope="module")
def pack(corpus) -> SyncPack:
    return build_sync_pack(corpus, CONFIGS["cpu"])


def test_mel_quantisation_round_trip_is_within_half_a_step():
    mel = np.linspace(-4, 4, 1001, dtype=np.float32)[None]
    back = dequantise_mel(torch.from_numpy(quantise_mel(mel))).numpy()
    assert np.abs(back - mel).max() <= 8 / 255 / 2 + 1e-6
    assert quantise_mel(np.array([MEL_SILENCE]))[0] == 0 and quantise_mel(np.array([4.0]))[0] == 255


def test_pack_holds_the_mouths_labels_and_padded_spectrogram_of_each_speaking_track(corpus, pack):
    # The negative track is left out; train tracks first, then val (the order of `splits`).
    assert pack.video_ids == ["v0", "v2", "v1"]
    assert pack.split("train").tolist() == [0, 1] and pack.split("val").tolist() == [2]
    first, n, column, columns, split = pack.tracks[1]
    assert (first, n, split) == (60, 40, 0)
    track = corpus.track(2)
    assert np.array_equal(
        pack.mouths[first : first + n], mouth_crops(np.asarray(track.crops), CONFIGS["cpu"])[:, 0]
    )
    assert np.array_equal(pack.labels[first : first + n], track.labels)
    padded = log_mel(with_silence(np.asarray(track.audio), PAD_FRAMES, PAD_FRAMES))
    assert columns == padded.shape[1] and column == pack.tracks[0, 3]
    assert np.array_equal(pack.mel[:, column : column + columns], quantise_mel(padded))


def test_mel_steps_wrap_and_come_back_exactly():
    mel = np.array([[0, 255, 3, 3, 250], [7, 0, 0, 128, 1]], np.uint8)
    steps = mel_steps(mel)
    assert steps.tolist() == [[0, 255, 4, 0, 247], [7, 249, 0, 128, 129]]
    assert np.array_equal(mel_from_steps(steps), mel)


def test_saved_pack_reads_back_with_the_mouths_within_two_grey_levels(pack, tmp_path):
    pack.save(tmp_path / "pack")
    assert sorted(p.name for p in (tmp_path / "pack").iterdir()) == [
        "mouths.mp4",
        "pack.json",
        "pack.npz",
    ]
    back = SyncPack.load(tmp_path / "pack")
    assert back.mouths.shape == pack.mouths.shape and back.video_ids == pack.video_ids
    error = np.abs(back.mouths.astype(int) - pack.mouths.astype(int))
    assert error.mean() < 2.0 and abs((back.mouths.astype(int) - pack.mouths).mean()) < 0.5
    for name in ("labels", "mel", "tracks"):
        assert np.array_equal(getattr(back, name), getattr(pack, name))
    # The spectrogram is stored as its steps along time, and read back exactly.
    with np.load(tmp_path / "pack" / "pack.npz") as stored:
        assert sorted(stored.files) == ["labels", "mel_steps", "tracks"]
        assert np.array_equal(np.cumsum(stored["mel_steps"], axis=1, dtype=np.uint8), pack.mel)
    with pytest.raises(InputError, match="not a sync pack"):
        SyncPack.load(tmp_path)
    # A video that does not hold the pack's frames, fewer or more, is refused.
    meta_path = tmp_path / "pack" / "pack.json"
    meta = json.loads(meta_path.read_text())
    for frames, said in ((meta["frames"] + 1, "150 frames"), (meta["frames"] - 1, "150\\+")):
        meta_path.write_text(json.dumps({**meta, "frames": frames}))
        with pytest.raises(InputError, match=f"{said}.* decoded, the pack has {frames}"):
            SyncPack.load(tmp_path / "pack")


def _plain(**changes) -> SyncSampleConfig:
    values = dict(batch=32, hard=4, min_shift=2, max_shift=6, flip_prob=0.0, gain_db=(0.0, 0.0))
    return SyncSampleConfig(**{"white_noise_prob": 0.0, **values, **changes})


def test_sampler_cuts_the_positive_and_hard_windows_of_a_speaking_frame(corpus, pack):
    sampler = PackSampler(pack, "train", _plain())
    assert len(sampler) == 21 + 16  # track 0: centres 7..27; track 2: 12..27
    batch = sampler(torch.Generator().manual_seed(0))
    assert batch["mouths"].shape == (32, 5, 48, 96) and batch["mel"].shape == (32, 5, 80, 32)
    # Each sample's positive window is the padded spectrogram's window of one speaking centre
    # (the audio is noise: each window is unique); its hard windows are distinct offsets
    # 2 ≤ |k| ≤ 6 whose five frames lie inside the track.
    spectra = {}
    for row, track_id in ((0, 0), (1, 2)):
        audio = np.asarray(corpus.track(track_id).audio)
        spectra[row] = dequantise_mel(
            torch.from_numpy(quantise_mel(log_mel(with_silence(audio, PAD_FRAMES, PAD_FRAMES))))
        ).numpy()
    centres = {0: range(7, 28), 1: range(12, 28)}
    lengths = {0: 60, 1: 40}
    for mouths, windows in zip(batch["mouths"].numpy(), batch["mel"].numpy(), strict=True):
        found = [
            (row, c)
            for row in (0, 1)
            for c in centres[row]
            if np.allclose(windows[0], mel_window(spectra[row], c - 2 + PAD_FRAMES), atol=1e-5)
        ]
        assert len(found) == 1
        row, c = found[0]
        expected = pack.mouths[pack.tracks[row, 0] + c - 2 : pack.tracks[row, 0] + c + 3]
        # Brightness and contrast are the only change without the crop augmentation.
        corr = np.corrcoef(mouths.ravel(), expected.astype(np.float64).ravel())[0, 1]
        assert corr > 0.999
        shifts = []
        for w in windows[1:]:
            ks = [
                k
                for k in range(-6, 7)
                if np.allclose(w, mel_window(spectra[row], c - 2 + k + PAD_FRAMES), atol=1e-5)
            ]
            assert len(ks) == 1
            shifts += ks
        assert len(set(shifts)) == 4 and all(2 <= abs(k) <= 6 for k in shifts)
        assert all(0 <= c - 2 + k and c + 2 + k < lengths[row] for k in shifts)


def test_sampler_is_deterministic_per_seed_and_augments_within_range(pack):
    sampler = PackSampler(pack, "train", _plain(flip_prob=1.0, gain_db=(-6.0, 6.0)))
    one, again = (sampler(torch.Generator().manual_seed(5)) for _ in range(2))
    other = sampler(torch.Generator().manual_seed(6))
    assert all(torch.equal(one[k], again[k]) for k in one)
    assert not torch.equal(one["mel"], other["mel"])
    assert one["mouths"].min() >= 0 and one["mouths"].max() <= 255
    assert one["mel"].min() >= -4 and one["mel"].max() <= 4
    noisy = PackSampler(pack, "train", _plain(white_noise_prob=1.0, white_snr_db=(10.0, 10.0)))
    clean = PackSampler(pack, "train", _plain())
    a, b = (s(torch.Generator().manual_seed(1))["mel"] for s in (noisy, clean))
    # A noise floor 10 dB (0.8 units) under each window's peak: nothing falls below it.
    floor = b.amax(dim=(1, 2, 3), keepdim=True) - 0.8
    assert torch.all(a >= torch.minimum(floor, torch.full_like(floor, 4.0)) - 1e-4)
    assert torch.all(a >= b - 1e-5)


def test_lift_moves_every_image_of_a_sample_up_by_the_rows_asked_edges_repeated(pack):
    generator = torch.Generator().manual_seed(2)
    plain = PackSampler(pack, "train", _plain())(generator)["mouths"]
    generator = torch.Generator().manual_seed(2)
    lifted = PackSampler(pack, "train", _plain(lift_prob=1.0, lift_rows=(6.0, 6.0)))(generator)
    lifted = lifted["mouths"]  # the same windows; brightness and contrast drawn differently
    for a, b in zip(plain.numpy(), lifted.numpy(), strict=True):
        # Row r shows what row r + 6 showed; the bottom six rows repeat the last one.
        assert np.corrcoef(a[:, 6:].ravel(), b[:, :42].ravel())[0, 1] > 0.999
        assert np.allclose(b[:, 42:], b[:, 41:42], atol=1e-3)
    down = PackSampler(pack, "train", _plain(lift_prob=1.0, lift_rows=(-3.0, -3.0)))
    below = down(torch.Generator().manual_seed(2))["mouths"].numpy()
    for a, b in zip(plain.numpy(), below, strict=True):
        assert np.corrcoef(a[:, :45].ravel(), b[:, 3:].ravel())[0, 1] > 0.999


def test_an_audio_table_gives_the_embeddings_the_audio_encoder_would(pack):
    torch.manual_seed(0)
    model = ICSyncNet.from_config("cpu").eval()
    table = audio_embedding_table(model, pack, "train", batch_size=50)
    # Every window start s = 0 … n + 2·pad − 5 of the two speaking train tracks (60, 40 frames).
    starts = [60 + 2 * PAD_FRAMES - 4, 40 + 2 * PAD_FRAMES - 4]
    assert table.embeddings.shape == (sum(starts), 128)
    assert table.first.tolist() == [0, starts[0], -1]  # pack rows: train, train, val
    config = _plain(flip_prob=1.0)
    with_table = PackSampler(pack, "train", config, audio_table=table)
    one = with_table(torch.Generator().manual_seed(4))
    other = PackSampler(pack, "train", config)(torch.Generator().manual_seed(4))
    assert set(one) == {"mouths", "audio"} and torch.equal(one["mouths"], other["mouths"])
    with torch.no_grad():
        heard = model.audio_embeddings(other["mel"].flatten(0, 1)).view(32, 5, -1)
    assert one["audio"].shape == (32, 5, 128)
    assert torch.allclose(one["audio"], heard, atol=1e-5)


def test_sampler_refuses_a_split_too_small_or_an_option_it_cannot_apply(pack):
    with pytest.raises(InputError, match="fewer speaking windows than a batch"):
        PackSampler(pack, "train", _plain(batch=38))
    with pytest.raises(InputError, match="hard-negative offsets"):
        PackSampler(pack, "train", _plain(hard=11, max_shift=6))
    with pytest.raises(InputError, match="pink_noise_prob is not available with a sync pack"):
        PackSampler(pack, "train", _plain(pink_noise_prob=0.3))


def test_pack_matrices_are_the_sync_backend_matrices_of_the_corpus_tracks(corpus, pack):
    torch.manual_seed(0)
    model = ICSyncNet.from_config("cpu").eval()
    ((row, matrix, valid),) = list(pack_matrices(model, pack, "val"))
    assert row == 2 and matrix.shape == (31, 50 - 30)
    ((_, expected, expected_valid),) = list(
        track_matrices(ICSyncOffsets(model, 15), [corpus.track(1)], 5)
    )
    assert np.array_equal(valid, expected_valid)
    # The same windows; only the pack's 8-bit spectrogram differs.
    assert np.abs(matrix - expected).max() < 0.02
