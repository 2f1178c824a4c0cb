"""AVA-ActiveSpeaker trees laid out as TalkNet-ASD's preprocess_AVA writes them, built by hand."""

import hashlib
import shutil
import wave
from pathlib import Path

import cv2
import numpy as np
import pytest

from syncasd.data.ava import ava_corpus_key, ava_tracks, build_ava_corpus
from syncasd.errors import InputError
from syncasd.models.zoo import cache_dir
from syncasd.train import TrainConfig, open_corpus

# split, video, entity, fps, first timestamp, frames, jpg (height, width), speaking frames,
# wav samples (TalkNet cuts int(last·16000) − int(first·16000): 29/25 s, 23/25 s, 35/30 s).
A, B = "HV0H6oc4Kvs", "_145Aa_xkuE"  # a video id may hold "_"
ENTITIES = [
    ("train", A, f"{A}_0960_1020:1", 25.0, 960.0, 30, (100, 80), (10, 20), 18560),
    ("train", A, f"{A}_0960_1020:2", 25.0, 961.2, 24, (60, 90), (0, 0), 14720),
    ("val", B, f"{B}_0900_0960:3", 30.0, 900.0, 36, (100, 80), (0, 18), 18666),
]
VAL_FRAMES = Path("clips_videos", "val", B, f"{B}_0900_0960:3")
VAL_WAV = Path("clips_audios", "val", B, f"{B}_0900_0960:3.wav")

# The pipeline's crop of a whole jpg as the face box, by hand: s = half the longer side; rows
# cy − s … cy + 1.8s and columns cx ± 1.4s, the rest padded with 110.
#   100×80: s = 50, cy = 50, cx = 40 → rows 0…140, columns −30…110: 40 rows below, 30 a side.
#   60×90:  s = 45, cy = 30, cx = 45 → rows −15…111, columns −18…108: 15 above, 51 below, 18.
PADS = {(100, 80): ((0, 40), (30, 30)), (60, 90): ((15, 51), (18, 18))}


def hand_crop(jpg: Path) -> np.ndarray:
    gray = cv2.cvtColor(cv2.imread(str(jpg)), cv2.COLOR_BGR2GRAY)
    window = np.pad(gray, PADS[gray.shape], constant_values=110)
    return cv2.resize(window, (224, 224))[56:168, 56:168]


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())


def write_tree(root: Path) -> dict[str, tuple[list[Path], np.ndarray]]:
    """The tree, and per entity its jpgs in timestamp order and its wav samples."""
    rng = np.random.default_rng(0)
    lines: dict[str, list[str]] = {"train": [], "val": []}
    written = {}
    for split, video, entity, fps, t0, n, size, (a, b), samples in ENTITIES:
        folder = root / "clips_videos" / split / video / entity
        folder.mkdir(parents=True)
        jpgs = []
        for i in range(n):
            jpgs.append(folder / f"{t0 + i / fps:.2f}.jpg")
            cv2.imwrite(str(jpgs[-1]), rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        audio = rng.integers(-20000, 20000, samples).astype(np.int16)
        (root / "clips_audios" / split / video).mkdir(parents=True, exist_ok=True)
        write_wav(root / "clips_audios" / split / video / f"{entity}.wav", audio)
        labels = [int(a <= i < b) for i in range(n)]
        lines[split].append(f"{entity}\t{n}\t{fps}\t{labels}\t{len(lines[split]) + 2715}")
        written[entity] = (jpgs, audio)
    (root / "csv").mkdir()
    for split, rows in lines.items():
        (root / "csv" / f"{split}_loader.csv").write_text("\n".join(rows) + "\n")
    return written


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("ava") / "AVA"
    return root, write_tree(root)


def test_train_tracks_at_25_fps_take_every_frame(tree):
    root, written = tree
    tracks = list(ava_tracks(root, "train"))
    assert [t.entity for t in tracks] == ["HV0H6oc4Kvs_0960_1020:1", "HV0H6oc4Kvs_0960_1020:2"]
    assert [t.video_id for t in tracks] == ["HV0H6oc4Kvs"] * 2
    assert [len(t) for t in tracks] == [30, 24]
    first, second = tracks
    assert np.flatnonzero(first.labels).tolist() == list(range(10, 20))
    assert not second.labels.any()
    np.testing.assert_allclose(first.timestamps, 960.0 + np.arange(30) * 0.04)
    for track in tracks:
        jpgs, audio = written[track.entity]
        assert track.crops.shape == (len(track), 112, 112) and track.crops.dtype == np.uint8
        for k, jpg in enumerate(jpgs):
            np.testing.assert_array_equal(track.crops[k], hand_crop(jpg))
        # The wav runs from the first timestamp to the last: one frame short, zero-filled.
        assert track.audio.shape == (640 * len(track),)
        np.testing.assert_array_equal(track.audio[: len(audio)], audio)
        assert not track.audio[len(audio) :].any()


def test_a_30_fps_track_becomes_25_fps_frames_of_the_nearest_annotation(tree):
    root, written = tree
    (track,) = ava_tracks(root, "val")
    assert (track.video_id, track.entity) == ("_145Aa_xkuE", "_145Aa_xkuE_0900_0960:3")
    # 36 frames at 30 fps = 1.44 s = 30 frames at 25 fps; frame k at k/25 s takes source frame
    # round(1.2·k) (never a tie: 1.2·k is never x.5).
    assert len(track) == 30
    picks = [0, 1, 2, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 16, 17, 18, 19, 20, 22, 23]
    picks += [24, 25, 26, 28, 29, 30, 31, 32, 34, 35]
    jpgs, audio = written[track.entity]
    for k, j in enumerate(picks):
        np.testing.assert_array_equal(track.crops[k], hand_crop(jpgs[j]))
    # Source frames 0–17 speak (0.6 s): model frames 0–14.
    assert np.flatnonzero(track.labels).tolist() == list(range(15))
    np.testing.assert_allclose(track.timestamps, 900.0 + np.arange(30) * 0.04)
    np.testing.assert_array_equal(track.audio[:18666], audio)
    assert track.audio.shape == (19200,) and not track.audio[18666:].any()


def test_the_corpus_holds_both_splits_by_video(tree, tmp_path):
    root, written = tree
    corpus = build_ava_corpus(root, tmp_path / "corpus", progress=False)
    assert [(t.video_id, t.identity, t.split) for t in corpus.tracks] == [
        ("HV0H6oc4Kvs", "HV0H6oc4Kvs", "train"),
        ("HV0H6oc4Kvs", "HV0H6oc4Kvs", "train"),
        ("_145Aa_xkuE", "_145Aa_xkuE", "val"),
    ]
    assert [(t.offset, t.length) for t in corpus.tracks] == [(0, 30), (30, 24), (54, 30)]
    assert [t.negative for t in corpus.tracks] == [False, True, False]  # :2 never speaks
    assert corpus.split("train") == [0, 1] and corpus.split("val") == [2]
    assert corpus.tracks[0].source == str(
        root / "clips_videos" / "train" / "HV0H6oc4Kvs" / "HV0H6oc4Kvs_0960_1020:1"
    )
    assert corpus.tracks[2].sha256 == hashlib.sha256((root / VAL_WAV).read_bytes()).hexdigest()
    assert corpus.crops.shape == (84, 112, 112) and corpus.audio.shape == (84 * 640,)
    assert np.flatnonzero(corpus.labels).tolist() == list(range(10, 20)) + list(range(54, 69))
    jpgs, audio = written["HV0H6oc4Kvs_0960_1020:2"]
    np.testing.assert_array_equal(corpus.crops[30 + 23], hand_crop(jpgs[23]))
    np.testing.assert_array_equal(corpus.audio[30 * 640 : 30 * 640 + 14720], audio)
    np.testing.assert_array_equal(corpus.audio[54 * 640 - 640 : 54 * 640], np.zeros(640))


def test_a_built_corpus_is_opened_not_rebuilt(tree, tmp_path):
    root, _ = tree
    copy = tmp_path / "AVA"
    shutil.copytree(root, copy)
    build_ava_corpus(copy, tmp_path / "corpus", progress=False)
    shutil.rmtree(copy)
    assert len(build_ava_corpus(copy, tmp_path / "corpus", progress=False)) == 3


def _drop_val_csv(root: Path) -> None:
    (root / "csv" / "val_loader.csv").unlink()


def _drop_wav(root: Path) -> None:
    (root / VAL_WAV).unlink()


def _empty_frames(root: Path) -> None:
    for jpg in (root / VAL_FRAMES).glob("*.jpg"):
        jpg.unlink()


def _one_frame_less(root: Path) -> None:
    (root / VAL_FRAMES / "900.50.jpg").unlink()  # source frame 15


def _no_entity(root: Path) -> None:
    for split in ("train", "val"):
        (root / "csv" / f"{split}_loader.csv").write_text("")


def _wav_at(rate: int, channels: int):
    def mutate(root: Path) -> None:
        write_wav(root / VAL_WAV, np.zeros(800 * channels, np.int16), rate, channels)

    return mutate


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_drop_val_csv, r"csv/val_loader\.csv: not found; an AVA folder is the tree TalkNet"),
        (_drop_wav, r"_0900_0960:3\.wav: no such file"),
        (_empty_frames, r"_0900_0960:3: no face frames \(\*\.jpg\) of entity"),
        (_one_frame_less, r"_0900_0960:3: 35 face frames but 36 labels in val_loader\.csv"),
        (_wav_at(8000, 1), r"8000 Hz, 1 channel\(s\), int16; AVA clips must be 16 kHz mono"),
        (_wav_at(16000, 2), r"16000 Hz, 2 channel\(s\), int16; AVA clips must be 16 kHz mono"),
        (_no_entity, r"AVA: the loader CSVs of train, val list no entity"),
    ],
)
def test_a_broken_tree_is_one_clear_error_and_leaves_no_corpus(tree, tmp_path, mutate, message):
    root, _ = tree
    copy = tmp_path / "AVA"
    shutil.copytree(root, copy)
    mutate(copy)
    with pytest.raises(InputError, match=message):
        build_ava_corpus(copy, tmp_path / "corpus", progress=False)
    assert list((tmp_path / "corpus").glob("*")) == []


def test_only_train_and_val_have_labels(tree):
    with pytest.raises(InputError, match="test labels are not public"):
        ava_tracks(tree[0], "test")
    with pytest.raises(InputError, match="no such folder"):
        build_ava_corpus(tree[0] / "missing", tree[0].parent / "none", progress=False)


def test_a_config_with_data_ava_trains_on_its_corpus(tree, tmp_path):
    root, _ = tree
    config = TrainConfig.from_dict({"model": "light-asd", "data": {"ava": str(root)}})
    corpus = open_corpus(config, progress=False)
    assert corpus.root == cache_dir() / "corpus" / ava_corpus_key(root)
    assert [len(corpus.split(s)) for s in ("train", "val")] == [2, 1]
    chosen = {"ava": str(root), "corpus": str(tmp_path / "mine")}
    corpus = open_corpus(TrainConfig.from_dict({"data": chosen}), progress=False)
    assert corpus.root == tmp_path / "mine" and len(corpus) == 3
