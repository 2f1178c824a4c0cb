"""The who-speaks test: the ranking metric and labels on hand-made arrays, then one real
2-face scene through the pipeline with Light-ASD (AVA), in the library and through the CLI."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from conftest import DATA, needs_shared

from syncasd.evaluate.whospeaks import (
    Scene,
    SceneScore,
    WhoSpeaksTest,
    called_shares,
    frames_from_change,
    heard_first_by_distance,
    heard_first_mask,
    heard_first_share,
    heard_tiles,
    looped_labels,
    report,
    tile_of,
)

NAN = float("nan")
WEIGHTS = DATA / "weights" / "light_asd_ava.model"
# Two speaking test identities (Silero VAD labels); 3 s keeps the CPU run short.
CLIPS = [DATA / "clips" / "vasp" / "ID1" / "014.mp4", DATA / "clips" / "vasp" / "ID2" / "013.mp4"]
SCENE = {"faces": [2], "scenes": 1, "seed": 0, "duration": 3.0}


# --- the metric -----------------------------------------------------------------------------


def test_heard_first_share_on_hand_computed_frames():
    heard = np.array([0.9, 0.5, 0.5, NAN, 0.2, 0.7, 0.9, 0.1])
    other = np.array([0.1, 0.5, 0.6, 0.3, NAN, NAN, 0.2, 0.0])
    voiced = np.array([1, 1, 1, 1, 1, 0, 0, 1], bool)
    # frame 0: first; 1: a tie, not first; 2: second; 3: heard untracked, a miss; 4: the only
    # tracked face, first; 5, 6: not voiced, ignored; 7: first.
    mask = heard_first_mask(heard, [other], voiced)
    assert mask.tolist() == [True, False, False, False, True, False, False, True]
    assert heard_first_share(heard, [other], voiced) == pytest.approx(3 / 6)


def test_heard_first_share_with_two_rivals():
    heard = np.array([0.6, 0.6, 0.6, 0.6])
    rivals = [np.array([0.5, 0.7, NAN, 0.1]), np.array([0.4, 0.1, 0.6, NAN])]
    voiced = np.ones(4, bool)
    # beats both; loses to the first; ties the second; beats the only tracked rival
    assert heard_first_mask(heard, rivals, voiced).tolist() == [True, False, False, True]
    assert heard_first_share(heard, rivals, voiced) == 0.5


def test_heard_first_share_is_undefined_without_voiced_frames():
    assert math.isnan(heard_first_share(np.ones(3), [np.zeros(3)], np.zeros(3, bool)))
    assert heard_first_share(np.full(2, NAN), [np.zeros(2)], np.ones(2, bool)) == 0.0


# --- labels and tiles -----------------------------------------------------------------------


def test_called_shares_on_hand_computed_frames():
    # Speaking frames: 0.9, 0.5 (called: ≥ 0.5), 0.2, NaN (no track: not called) → 2 of 4;
    # silent frames: 0.6 (called), 0.1, NaN → 1 of 3.
    labels = [np.array([1, 1, 0, 0]), np.array([1, 1, 0])]
    probs = [np.array([0.9, 0.5, 0.6, 0.1]), np.array([0.2, NAN, NAN])]
    assert called_shares(labels, probs) == (0.5, pytest.approx(1 / 3))
    assert called_shares(labels, probs, threshold=0.55) == (0.25, pytest.approx(1 / 3))
    speech, silence = called_shares([np.ones(2, bool)], [np.array([0.7, 0.4])])
    assert speech == 0.5 and math.isnan(silence)


def test_clip_labels_loop_on_the_scene_frames():
    clip = np.array([0, 1, 1, 0, 1], bool)  # 5 frames = 0.2 s
    assert looped_labels(clip, 0.2, 12).tolist() == [0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1]
    # video loop 0.32 s (8 frames), labels (audio) only 5 frames long: frames 5-7 silent
    assert looped_labels(clip, 0.32, 10).tolist() == [0, 1, 1, 0, 1, 0, 0, 0, 0, 1]
    # a scene shorter than the clip: trimmed
    assert looped_labels(clip, 0.2, 3).tolist() == [0, 1, 1]


def test_the_heard_tile_follows_the_turns_at_frame_centres():
    # 0.1 s turns = 2.5 frames: frame 2 (centre 0.1 s) is the second turn's.
    turns = [(0.0, 1), (0.1, 2), (0.2, 0)]
    assert heard_tiles(turns, 7).tolist() == [1, 1, 2, 2, 2, 0, 0]
    assert heard_tiles([(0.0, 1)], 3).tolist() == [1, 1, 1]


def test_frames_from_the_nearest_change_of_voice():
    # Changes at frames 2 and 5 (as above).
    turns = [(0.0, 1), (0.1, 2), (0.2, 0)]
    assert frames_from_change(turns, 7).tolist() == [2, 1, 0, 1, 1, 0, 1]
    assert (frames_from_change([(0.0, 1)], 3) > 10**9).all()


def test_heard_first_by_distance_pools_the_bins_over_scenes():
    # Two faces, the voice passes at frame 4 (0.16 s); face 0 heard on 0-3, face 1 on 4-7,
    # frame 7 silent. Face 0 leads on frames 0-4: right on 0-3, wrong on 4.
    labels = (np.array([1, 1, 1, 1, 0, 0, 0, 0], bool), np.array([0, 0, 0, 0, 1, 1, 1, 0], bool))
    scene = Scene((), ((0.0, 0), (0.16, 1)), None, (), labels)
    probs = [np.array([0.9] * 5 + [0.1] * 3), np.array([0.2] * 5 + [0.8] * 3)]
    score = SceneScore(scene, probs, [1, 1], 0)
    # Distances: 4 3 2 1 0 1 2 3; voiced: all but frame 7.
    rows = heard_first_by_distance([score, score], edges=(0, 2, 4))
    assert [(lo, hi, n) for lo, hi, _, n in rows] == [(0, 2, 6), (2, 4, 6), (4, None, 2)]
    assert [share for *_, share, _ in rows] == [pytest.approx(4 / 6), 1.0, 1.0]


def test_tile_of_takes_the_median_centre():
    rects = [(0.0, 0.0, 100.0, 100.0), (100.0, 0.0, 200.0, 100.0)]
    boxes = np.array([[10, 10, 30, 30], [20, 20, 40, 40], [150, 10, 170, 30]], float)
    assert tile_of(boxes, rects) == 0  # one stray box to the right does not move it
    assert tile_of(boxes + [100, 0, 100, 0], rects) == 1
    assert tile_of(boxes + [0, 200, 0, 200], rects) is None


# --- a real scene ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scene_run():
    test = WhoSpeaksTest(CLIPS, **SCENE)
    return test, test.run(f"light-asd={WEIGHTS}")


@needs_shared
def test_scene_is_seeded_labelled_and_cached(scene_run):
    from syncasd import media
    from syncasd.data.labelled import clip_labels

    test, _ = scene_run
    (scene,) = test.scenes
    assert sorted(scene.clips) == sorted(CLIPS) and scene.n_frames == 75
    assert scene.path.parent.name == "whospeaks" and scene.path.is_file()
    heard = scene.clips[scene.heard]
    expected = clip_labels(heard, media.read_audio(heard))[:75]
    np.testing.assert_array_equal(scene.labels[scene.heard], expected)
    assert scene.labels[scene.heard].sum() > 50  # VASP: speech nearly throughout
    assert not scene.labels[1 - scene.heard].any()

    mtime = scene.path.stat().st_mtime_ns
    again = WhoSpeaksTest(CLIPS, **SCENE).scenes[0]
    assert (again.path, again.heard, again.rects) == (scene.path, scene.heard, scene.rects)
    assert scene.path.stat().st_mtime_ns == mtime  # found in the cache, not composed again


@needs_shared
def test_a_conversation_scene_passes_the_voice_and_the_labels_between_faces():
    from syncasd import media
    from syncasd.data.labelled import clip_labels

    test = WhoSpeaksTest(CLIPS, **SCENE, turn=1.0)
    (scene,) = test.scenes
    first, second = scene.heard, 1 - scene.heard
    assert scene.turns == ((0.0, first), (1.0, second), (2.0, first))
    own = [clip_labels(c, media.read_audio(c))[:75] for c in scene.clips]
    turn_of = np.repeat([first, second, first], 25)
    for tile in (0, 1):
        np.testing.assert_array_equal(scene.labels[tile], own[tile] & (turn_of == tile))
    assert not (scene.labels[0] & scene.labels[1]).any()
    # The audio is each face's own voice in its turn (seconds 0.2-0.8 and 1.2-1.8).
    heard = media.read_audio(scene.path)
    for tile, (lo, hi) in ((first, (3200, 12800)), (second, (19200, 28800))):
        voice = media.read_audio(scene.clips[tile])[lo:hi].astype(float)
        assert np.corrcoef(heard[lo:hi].astype(float), voice)[0, 1] > 0.9
    # Not the one-voice scene's cache entry.
    assert scene.path != WhoSpeaksTest(CLIPS, **SCENE).scenes[0].path


@needs_shared
def test_faces_talking_together_are_each_heard_and_labelled_from_their_clip(tmp_path):
    from syncasd import media
    from syncasd.data.labelled import clip_labels
    from syncasd.data.samples import speech_rms

    test = WhoSpeaksTest(CLIPS, **SCENE, together=True)
    (scene,) = test.scenes
    assert scene.turns == () and scene.heard is None
    for tile, clip in enumerate(scene.clips):
        np.testing.assert_array_equal(
            scene.labels[tile], clip_labels(clip, media.read_audio(clip))[:75]
        )
    assert (scene.labels[0] & scene.labels[1]).sum() > 40  # VASP: both speak nearly throughout
    # The audio is the sum of both voices (AAC-coded), the speech of each as loud as the
    # other's: least squares finds the gains, and each voice times its gain has the quieter
    # one's speech level (VASP: ID2's voice is 8 dB louder than ID1's).
    heard = media.read_audio(scene.path)[:48000].astype(float)
    audios = [media.read_audio(c) for c in scene.clips]
    voices = [a.astype(float) for a in audios]
    labels = [clip_labels(c, a) for c, a in zip(scene.clips, audios, strict=True)]
    levels = [speech_rms(v, y) for v, y in zip(voices, labels, strict=True)]
    gains, *_ = np.linalg.lstsq(np.stack([v[:48000] for v in voices], 1), heard, rcond=None)
    assert np.corrcoef(heard, np.stack([v[:48000] for v in voices], 1) @ gains)[0, 1] > 0.95
    assert gains * levels == pytest.approx([min(levels)] * 2, rel=0.05)
    assert max(levels) / min(levels) > 2
    assert scene.path not in {s.path for s in WhoSpeaksTest(CLIPS, **SCENE).scenes}

    result = test.run(f"light-asd={WEIGHTS}")
    (score,) = result.scenes
    speech, silence = result.called[2]
    assert result.called_all == result.called[2]
    assert (speech, silence) == called_shares(scene.labels, score.probs)
    assert math.isnan(result.share[2]) and 0 <= result.maps[2] <= 100
    # Measured: light-asd (AVA) calls all 145 speaking face-frames speaking (and the 5 silent).
    assert speech == pytest.approx(1.0, abs=0.03)
    text = report(test, [result]).save(tmp_path).read_text()
    assert "talking at once" in text and "| light-asd | 2 | " in text and "**" not in text
    assert (tmp_path / "speech_called.png").read_bytes()[:4] == b"\x89PNG"

    proc = syncasd(
        "eval", "whospeaks", *CLIPS, "--model", f"light-asd={WEIGHTS}", "--faces", 2,
        "--scenes", 1, "--duration", 3, "--seed", 0, "--together",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "model\tfaces\tspeech_called%\tsilence_called%\tmAP"
    row = lines[1].split("\t")
    assert row[:2] == ["light-asd", "2"] and len(row) == 5
    assert float(row[2]) == pytest.approx(100 * speech, abs=0.01)
    assert float(row[3]) == pytest.approx(100 * silence, abs=0.01)
    assert float(row[4]) == pytest.approx(result.maps[2], abs=0.01)


@needs_shared
def test_light_asd_on_a_real_two_face_scene(scene_run, tmp_path):
    test, result = scene_run
    (score,) = result.scenes
    assert score.tracks_per_tile == [1, 1] and score.unmatched == 0
    assert 0.0 <= result.share[2] <= 1.0 and 0.0 <= result.maps[2] <= 100.0
    assert (result.share_all, result.map_all) == (result.share[2], result.maps[2])
    # Measured: heard first on 76.7 % of the voiced frames, mAP 75.06 %.
    assert result.share[2] == pytest.approx(0.767, abs=0.05)
    assert result.maps[2] == pytest.approx(75.06, abs=3.0)
    s = score.scene
    voiced = s.labels[s.heard]
    heard_mean = np.nanmean(score.probs[s.heard][voiced])
    other_mean = np.nanmean(score.probs[1 - s.heard][voiced])
    assert heard_mean > other_mean  # measured 0.89 against 0.77

    text = report(test, [result]).save(tmp_path).read_text()
    assert "| light-asd | 2 | " in text and "| light-asd | all | " in text
    assert f"**{s.clips[s.heard].parent.name}/{s.clips[s.heard].name}**" in text
    assert (tmp_path / "heard_first.png").read_bytes()[:4] == b"\x89PNG"


def syncasd(*args: object) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "syncasd", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


@needs_shared
def test_cli_prints_the_same_numbers(scene_run, tmp_path):
    _, result = scene_run
    proc = syncasd(
        "eval", "whospeaks", *CLIPS, "--model", f"light-asd={WEIGHTS}", "--faces", 2,
        "--scenes", 1, "--duration", 3, "--seed", 0, "--report", tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "model\tfaces\theard_first%\tmAP"
    rows = {line.split("\t")[1]: line.split("\t") for line in lines[1:]}
    assert set(rows) == {"2", "all"} and rows["2"][0] == "light-asd"
    assert float(rows["2"][2]) == pytest.approx(100 * result.share[2], abs=0.01)
    assert float(rows["2"][3]) == pytest.approx(result.maps[2], abs=0.01)
    assert (tmp_path / "report.md").is_file()


@needs_shared
@pytest.mark.parametrize(
    ("clips", "words"),
    [
        (CLIPS, ["3-face scenes need clips of 3 different test identities", "hold 2"]),
        ([DATA / "clips" / "vasp" / "ID20" / "017.mp4"] * 2, ["hold 0", "(none)"]),  # train
        ([DATA / "clips" / "vasp" / "ID1" / "nope.mp4"], ["no such file"]),
        ([*CLIPS, "--faces", "2", "--turn", "0"], ["--turn must be positive, got 0"]),
        ([*CLIPS, "--turn", "1", "--together"], ["--together and --turn: choose one"]),
    ],
)
def test_cli_refuses_what_cannot_make_scenes(clips, words):
    proc = syncasd("eval", "whospeaks", *clips)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("syncasd: error: "), proc.stderr
    for word in words:
        assert word in lines[0]


@needs_shared
def test_validation_identities_make_scenes_only_when_asked(tmp_path, monkeypatch):
    from syncasd.data.splits import Split, identity_of
    from syncasd.errors import InputError

    monkeypatch.setenv("SYNCASD_CACHE", str(tmp_path))
    split = Split.load()
    val = split.clips(DATA / "clips", "val")
    with pytest.raises(InputError, match="different test identities; the 92 clip"):
        WhoSpeaksTest(val, faces=(2,), scenes=1)
    chosen = WhoSpeaksTest(val, faces=(2,), scenes=1, duration=1.0, part="val")
    (scene,) = chosen.scenes
    assert all(split.split_of(c) == "val" for c in scene.clips)
    assert len({identity_of(c) for c in scene.clips}) == 2 and scene.path.is_file()
