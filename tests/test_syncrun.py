"""Sync analysis of whole videos, and moving their audio, on real clips from ../shared/data.

Most tests use Light-ASD's AVA weights (not synchronization-aware: its offsets mean nothing,
but its matrix must still be exactly what `detect` and the shifts say). The last test needs the
bundled sync-aware default model: it finds a known offset.
"""

from __future__ import annotations

import json
import warnings

import av
import numpy as np
import pytest
from conftest import DATA, FIXTURES, SYNC_TRACK_KEYS, faceless_video, lag, needs_shared

import syncasd
from syncasd.errors import InputError, MediaError
from syncasd.media import read_audio
from syncasd.pipeline import Detector
from syncasd.syncmap import SegmentOffset, SyncParams, TrackSync, VideoSync, offscreen_ratio
from syncasd.syncrun import (
    SyncAnalyzer,
    SyncResult,
    check_output,
    drift_fix,
    fix_offset,
    main_track,
    shift_audio,
    verdict,
)

pytestmark = needs_shared

WEIGHTS = str(DATA / "weights" / "light_asd_ava.model")
CLIP = DATA / "clips" / "vasp" / "ID1" / "015.mp4"  # 4.7 s, 224×224, AAC 16 kHz mono
# LRS2 was synced by its makers: its own offset is 0, so a shift's truth is the shift itself
# (VASP ID1/015's soundtrack reads 1.6 frames late by the corrected clock).
IN_SYNC_CLIP = DATA / "clips" / "lrs2" / "00004.mp4"  # 5.5 s, 160×160
K = 4
SPF = 640


@pytest.fixture(scope="module")
def analyzer() -> SyncAnalyzer:
    return SyncAnalyzer(max_offset=K, model="light-asd", weights=WEIGHTS, duration=3.0)


def video_packets(path) -> list[tuple[bytes, float | None, bool]]:
    """Payload, presentation time (s) and key flag of every video packet."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        return [
            (
                bytes(p),
                None if p.pts is None else round(float(p.pts * p.time_base), 4),
                p.is_keyframe,
            )
            for p in c.demux(stream)
            if p.size
        ]


# ---------------------------------------------------------------------------------------------
# SyncAnalyzer


def test_a_real_clip_gives_one_track_and_its_matrix(analyzer):
    result = analyzer(CLIP)
    assert isinstance(result, SyncResult) and isinstance(result, VideoSync)
    assert len(result.tracks) == 1 and result.spans == [(0, 74)]
    (track,) = result.tracks
    assert result.matrices[0].shape == (2 * K + 1, 75)
    assert -K <= track.offset_frames <= K
    assert track.offset_ms == 40.0 * track.offset_frames
    assert 0.0 <= track.confidence <= 1.0 and 0.0 <= track.prob_at_offset <= 1.0
    assert track.frame_probs.shape == (75,)
    line = json.loads(result.to_json_line())
    assert line["video"] == str(CLIP)
    assert set(line["tracks"][0]) == SYNC_TRACK_KEYS
    detail = result.to_dict()
    assert detail["tracks"][0]["first_frame"] == 0 and detail["tracks"][0]["last_frame"] == 74
    assert len(detail["tracks"][0]["mean_curve"]) == 2 * K + 1
    assert result.main is track


def test_zero_shift_row_is_what_detect_scores():
    # The same model through torch on the whole 4.7 s clip: one scoring window (< 6 s). (With
    # --duration, detect's audio stops at the interval's end where sync reads on.)
    detected = Detector(model="light-asd", weights=WEIGHTS, backend="torch")(CLIP)
    result = SyncAnalyzer(max_offset=1, model="light-asd", weights=WEIGHTS)(CLIP)
    assert len(detected.tracks) == 1 and len(detected.tracks[0].frames) == 118
    assert result.spans == [(0, 117)]
    assert np.abs(result.matrices[0][1] - detected.tracks[0].probs).max() < 1e-5


def test_a_clip_with_delayed_audio_has_its_matrix_moved_by_as_many_rows(analyzer, tmp_path):
    d = 3
    delayed = tmp_path / "delayed.mov"
    shift_audio(CLIP, delayed, d, codec="pcm_s16le")  # lossless: only the shift differs
    before, after = analyzer(CLIP).matrices[0], analyzer(delayed).matrices[0]
    # Row k of the delayed clip reads the audio of row k - d of the original.
    assert np.abs(after[d:] - before[:-d]).max() < 1e-4
    assert np.abs(after - before).max() > 0.05


def test_the_interval_reads_real_audio_beyond_its_ends(analyzer):
    # --start 1 --duration 1.2: the shifted rows read the file's audio before 1 s and after
    # 2.2 s (K + 5 frames each side), so a track at the interval's frame 0 scores as the same
    # crops at 1 s of the file.
    part = SyncAnalyzer(max_offset=K, model="light-asd", weights=WEIGHTS, start=1.0, duration=1.2)
    audio, lead = part._audio(CLIP)
    assert lead == K + 5 and len(audio) == (30 + 2 * (K + 5)) * SPF
    crops = np.load(FIXTURES / "inputs" / "clip014_gray112.npy")[:20]
    inside = part.backend(crops, audio, lead)
    whole = analyzer.backend(crops, read_audio(CLIP), 25)
    assert np.abs(inside - whole).max() < 1e-4


def test_no_face_gives_no_track_and_a_warning(analyzer, tmp_path):
    video = tmp_path / "noface.mp4"
    faceless_video(video, CLIP)
    with pytest.warns(UserWarning, match="no face"):
        result = analyzer(video)
    assert result.tracks == [] and result.matrices == [] and result.main is None
    assert json.loads(result.to_json_line()) == {"video": str(video), "tracks": []}


@pytest.mark.parametrize(
    "name, words",
    [
        ("missing", "no such file"),
        ("garbage", "not a readable video"),
        ("truncated", "truncated"),
        ("no-audio", "no audio track"),
        ("silent", "silent"),
    ],
)
def test_bad_input_raises_what_detect_raises(analyzer, tmp_path, name, words):
    video = {
        "missing": tmp_path / "nope.mp4",
        "garbage": tmp_path / "x.mp4",
        "truncated": tmp_path / "cut.mp4",
        "no-audio": DATA / "clips" / "liveportrait" / "d0.mp4",
        "silent": DATA / "clips" / "liveportrait" / "d3.mp4",
    }[name]
    if name == "garbage":
        video.write_bytes(bytes(range(256)) * 40)
    if name == "truncated":
        data = CLIP.read_bytes()
        video.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match=words):
        analyzer(video)


def test_options_that_cannot_apply_are_refused():
    with pytest.raises(InputError, match="torch"):
        SyncAnalyzer(model="light-asd", weights=WEIGHTS, backend="ort")
    with pytest.raises(InputError, match="demo"):
        SyncAnalyzer(model="light-asd", weights=WEIGHTS, scoring="demo")
    with pytest.raises(InputError, match="max offset"):
        SyncAnalyzer(model="light-asd", weights=WEIGHTS, max_offset=500)


def test_the_detector_only_crops_and_an_icsyncnet_backend_reads_its_crops(tmp_path):
    import torch

    from syncasd.models.icsyncnet import ICSyncNet
    from syncasd.offsets import ICSyncOffsets

    cropped = Detector(model="light-asd", weights=WEIGHTS, score=False, duration=1.0)(CLIP)
    scored = Detector(model="light-asd", weights=WEIGHTS, keep_crops=True, duration=1.0)(CLIP)
    (a,), (b,) = cropped.tracks, scored.tracks
    assert np.array_equal(a.crops, b.crops) and np.array_equal(a.frames, b.frames)
    assert not a.probs.any() and b.probs.any()  # nothing scored: no model was loaded

    torch.manual_seed(0)
    weights = tmp_path / "ics.pt"
    torch.save(ICSyncNet.from_config("cpu").state_dict(), weights)
    analyzer = SyncAnalyzer(max_offset=3, model="ic-syncnet", weights=str(weights), duration=1.0)
    assert isinstance(analyzer.backend, ICSyncOffsets)
    result = analyzer(CLIP)
    expected = analyzer.backend(a.crops, read_audio(CLIP), 0)
    assert np.array_equal(result.matrices[0], expected)


def test_sync_function_and_package_exports():
    assert syncasd.sync is syncasd.syncrun.sync
    assert syncasd.SyncAnalyzer is SyncAnalyzer
    result = syncasd.sync(CLIP, model="light-asd", weights=WEIGHTS, duration=1.0, max_offset=2)
    assert [m.shape for m in result.matrices] == [(5, 25)]


def test_main_track_is_the_longest_and_verdict_says_why():
    def track(tid, n, offset=0, prob=0.9, ratio=0.0, in_sync=True):
        return TrackSync(
            tid, offset, 40.0 * offset, 0.5, prob, ratio, in_sync, frame_probs=np.zeros(n)
        )

    video = VideoSync("v.mp4", [track(0, 30), track(1, 80), track(2, 80)])
    assert main_track(video).track_id == 1
    assert main_track(VideoSync("v.mp4", [])) is None
    params = SyncParams()
    assert verdict(track(0, 5), params) == "in sync"
    late = verdict(track(0, 5, offset=5, in_sync=False), params)
    assert late == "not in sync (audio 200 ms late)"
    weak = verdict(track(0, 5, offset=-3, prob=0.2, ratio=0.6, in_sync=False), params)
    assert "120 ms early" in weak and "weak sync" in weak and "off-screen" in weak


def test_drift_fix_is_the_main_tracks_line_at_the_files_start():
    # Offset 1.0 + 0.004 frames per frame (240 ms a minute) along the second track, which
    # starts at model frame 100 of an analysis starting at 2 s: 150 frames into the file.
    line = [
        SegmentOffset(250 * i, 250 * i + 249, 1.0 + 0.004 * (250 * i + 124.5)) for i in range(3)
    ]
    short = TrackSync(0, 0, 0.0, 0.5, 0.9, 0.0, True, frame_probs=np.zeros(40))
    long = TrackSync(
        1,
        2,
        80.0,
        0.5,
        0.9,
        0.0,
        False,
        frame_probs=np.zeros(750),
        offsets_over_time=line,
        drift_ms_per_min=240.0,
    )
    result = SyncResult("v.mp4", [short, long], spans=[(0, 39), (100, 849)], start=2.0)
    at_start, drift = drift_fix(result, long)
    assert at_start == pytest.approx(1.0 - 0.004 * 150)
    assert drift == 240.0
    assert drift_fix(result, short) is None  # no drift measured


# ---------------------------------------------------------------------------------------------
# Moving the audio


@pytest.mark.parametrize("codec, suffix", [("pcm_s16le", ".mov"), ("flac", ".mp4")])
def test_shift_and_fix_are_sample_exact_with_a_lossless_codec(tmp_path, codec, suffix):
    d = 5
    original = read_audio(CLIP)
    delayed, fixed = tmp_path / f"delayed{suffix}", tmp_path / f"fixed{suffix}"
    shift_audio(CLIP, delayed, d, codec=codec)
    fix_offset(delayed, fixed, d, codec=codec)  # the measured offset of `delayed` is +d
    moved, back = read_audio(delayed), read_audio(fixed)
    n = d * SPF
    assert len(moved) == len(back) == len(original)
    assert np.array_equal(moved, np.concatenate([np.zeros(n, np.int16), original[:-n]]))
    assert np.array_equal(back[:-n], original[:-n]) and not back[-n:].any()
    assert video_packets(delayed) == video_packets(CLIP) == video_packets(fixed)


def test_fix_with_aac_puts_the_audio_back_and_copies_the_video(tmp_path):
    d = 5
    original = read_audio(CLIP)
    delayed, fixed = tmp_path / "delayed.mp4", tmp_path / "fixed.mp4"
    shift_audio(CLIP, delayed, d)
    fix_offset(delayed, fixed, d)
    assert lag(original, read_audio(delayed)) == d * SPF
    back = read_audio(fixed)
    assert lag(original, back) == 0
    n = min(len(back), len(original)) - d * SPF
    assert np.corrcoef(original[:n], back[:n])[0, 1] > 0.99  # AAC twice: close, not exact
    assert video_packets(fixed) == video_packets(CLIP)
    with av.open(str(fixed)) as c:
        assert c.streams.audio[0].codec_context.name == "aac"
        assert c.streams.audio[0].codec_context.sample_rate == 16000


def envelope_lags_ms(reference: np.ndarray, signal: np.ndarray, at_s: list[float]) -> np.ndarray:
    """How much later (ms) `signal` is than `reference` around each time: the peak of the
    correlation of their loudness envelopes (1 ms steps, 0.8 s windows). The envelope, not the
    waveform: resampled speech changes pitch a little, and waveform peaks jump by periods."""

    def envelope(x: np.ndarray) -> np.ndarray:
        return np.convolve(np.abs(x.astype(np.float64)), np.ones(80) / 80, "same")[::16]

    ref, sig = envelope(reference), envelope(signal)
    lags = []
    for t in at_s:
        at, half = int(t * 1000), 400
        w = ref[at - half : at + half] - ref[at - half : at + half].mean()
        seg = sig[at - half : at + half + 200]
        corr = [np.dot(seg[j : j + 2 * half] - seg[j : j + 2 * half].mean(), w) for j in range(200)]
        lags.append(int(np.argmax(corr)))
    return np.array(lags, float)


def test_a_drift_makes_the_audio_later_in_proportion_to_time(tmp_path):
    # 1.5 % (900 ms a minute): the audio gets 15 ms later every second, the 2-frame (80 ms)
    # shift on top, and its length grows by 1.5 %.
    original = read_audio(CLIP)
    drifting = tmp_path / "drifting.mov"
    shift_audio(CLIP, drifting, 2, drift_ms_per_min=900.0, codec="pcm_s16le")
    moved = read_audio(drifting)
    assert len(moved) == pytest.approx(len(original) * 1.015, abs=SPF)
    times = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    slope, intercept = np.polyfit(times, envelope_lags_ms(original, moved, times), 1)
    assert slope == pytest.approx(15.0, abs=1.5)  # ms per second
    assert intercept == pytest.approx(80.0, abs=6.0)
    # Without the drift the lag is the shift alone, everywhere.
    shifted = tmp_path / "shifted.mov"
    shift_audio(CLIP, shifted, 2, codec="pcm_s16le")
    np.testing.assert_allclose(envelope_lags_ms(original, read_audio(shifted), times), 80, atol=2)


def test_shift_refuses_its_input_and_leaves_nothing_half_written(tmp_path):
    copy = tmp_path / "clip.mp4"
    copy.write_bytes(CLIP.read_bytes())
    for target in (copy, tmp_path / "." / "clip.mp4"):
        with pytest.raises(InputError, match="is the input video"):
            shift_audio(copy, target, 2)
        with pytest.raises(InputError, match="is the input video"):
            check_output(copy, target)
    assert copy.read_bytes() == CLIP.read_bytes()
    link = tmp_path / "link.mp4"
    link.symlink_to(copy)
    with pytest.raises(InputError, match="is the input video"):
        fix_offset(copy, link, 2)
    with pytest.raises(MediaError, match="no audio track"):
        shift_audio(DATA / "clips" / "liveportrait" / "d0.mp4", tmp_path / "a.mp4", 1)
    with pytest.raises(InputError, match="suffix"):
        shift_audio(copy, tmp_path / "out.notavideo", 1)
    with pytest.raises(InputError, match="does not exist"):
        shift_audio(copy, tmp_path / "no" / "out.mp4", 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "link.mp4"]


# ---------------------------------------------------------------------------------------------
# The sync-aware default model (bundled weights)


def test_default_model_finds_a_known_offset(tmp_path):
    d = 5
    delayed = tmp_path / "delayed.mp4"
    shift_audio(IN_SYNC_CLIP, delayed, d)
    analyzer = SyncAnalyzer()  # sync-pair, the bundled weights, K = 15
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        original, moved = analyzer(IN_SYNC_CLIP), analyzer(delayed)
    assert abs(original.main.offset_frames) <= 1, original.to_json_line()
    assert abs(moved.main.offset_frames - d) <= 1, moved.to_json_line()


def test_pauses_do_not_count_as_off_screen_speech():
    """A GRID utterance: speech between silences. The backend scores silence low, so over all
    frames about half looked off-screen (0.53, "not in sync"); over the voiced frames only, the
    face explains its voice."""
    result = SyncAnalyzer()(DATA / "clips" / "grid" / "bbaf2n.mpg")
    track = result.main
    assert track.offscreen_ratio < 0.2 and track.in_sync, result.to_json_line()
    over_all_frames = offscreen_ratio(track.p_max)
    assert over_all_frames > 0.4  # what the ratio was without the speech mask


def test_footage_known_to_be_in_sync_reads_zero():
    """GRID (studio) and LRS2 (synced by its makers): our weights, trained on clips whose audio
    lies a frame late, read them at -1 until the registry's 40 ms clock correction (docs/sync.md,
    "The training clips' clock")."""
    analyzer = SyncAnalyzer()
    for clip in ("grid/bbaf2n.mpg", "lrs2/00001.mp4", "lrs2/00004.mp4"):
        result = analyzer(DATA / "clips" / clip)
        assert result.main.offset_frames == 0, result.to_json_line()


def test_light_syncnet_alone_finds_a_known_offset(tmp_path):
    # scan's default backend, bundled: the same delayed copy, placed within ±1 frame.
    d = -4
    advanced = tmp_path / "advanced.mp4"
    shift_audio(IN_SYNC_CLIP, advanced, d)
    analyzer = SyncAnalyzer(model="light-syncnet")
    original, moved = analyzer(IN_SYNC_CLIP), analyzer(advanced)
    assert abs(original.main.offset_frames) <= 1, original.to_json_line()
    assert abs(moved.main.offset_frames - d) <= 1, moved.to_json_line()


# ---------------------------------------------------------------------------------------------
# detect --sync / --require-sync (the bundled sync-aware default as the sync backend)


def test_detect_sync_columns_and_require_sync(tmp_path):
    import csv

    from syncasd.results import write_csv, write_json

    delayed = tmp_path / "delayed.mp4"
    shift_audio(IN_SYNC_CLIP, delayed, 8)  # the voice 320 ms after the lips: not in sync
    plain = Detector(backend="torch", duration=3.0)
    synced = Detector(backend="torch", duration=3.0, sync=True, sync_max_offset=10)
    required = Detector(backend="torch", duration=3.0, require_sync=True, sync_max_offset=10)
    means, results = {}, {}
    for name, video in (("original", IN_SYNC_CLIP), ("delayed", delayed)):
        results[name] = synced(video)
        (p,), (s,), (r,) = plain(video).tracks, results[name].tracks, required(video).tracks
        assert p.sync is None and s.sync is not None and s.sync_probs.shape == s.probs.shape
        assert np.allclose(s.probs, p.probs, atol=1e-5)  # --sync alone changes no score
        assert np.allclose(r.probs, np.minimum(p.probs, r.sync_probs), atol=1e-5)
        means[name] = (float(s.sync_probs.mean()), s.sync.offset_frames)
    # In sync at offset 0 on the original; the delayed voice is much less so (measured 0.78
    # and 0.12 mean in-sync probability).
    assert abs(means["original"][1]) <= 1, means
    assert means["delayed"][0] < 0.6 * means["original"][0], means

    result = results["original"]
    write_csv(result, tmp_path / "out.csv")
    write_json(result, tmp_path / "out.json")
    with open(tmp_path / "out.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 75 and {"sync_prob", "sync_offset"} <= set(rows[0])
    assert all(int(r["sync_offset"]) == result.tracks[0].sync.offset_frames for r in rows)
    doc = json.loads((tmp_path / "out.json").read_text())
    entry = doc["tracks"][0]
    assert set(entry["sync"]) == SYNC_TRACK_KEYS - {"track_id"}
    assert len(entry["sync_probs"]) == 75


def test_a_syncnet_backend_reads_colour_224_crops_of_the_same_track(random_syncnet_weights):
    from syncasd.offsets import SyncNetOffsets

    weights = str(random_syncnet_weights)
    analyzer = SyncAnalyzer(max_offset=2, model="syncnet-v2", weights=weights, duration=1.0)
    assert (
        isinstance(analyzer.backend, SyncNetOffsets) and analyzer.detector.options.crop == "syncnet"
    )
    result = analyzer(CLIP)
    (matrix,) = result.matrices
    assert matrix.shape == (5, 25) and ((matrix > 0) & (matrix < 1)).all()
    # The crops it read are the recipe's colour crops of the track the ASD pipeline finds.
    coloured = Detector(score=False, crop="syncnet", keep_crops=True, duration=1.0)(CLIP)
    gray = Detector(score=False, keep_crops=True, duration=1.0)(CLIP)
    (c,), (g,) = coloured.tracks, gray.tracks
    assert c.crops.shape == (25, 224, 224, 3) and g.crops.shape == (25, 112, 112)
    assert np.array_equal(c.frames, g.frames)
    expected = analyzer.backend(c.crops, read_audio(CLIP), 0)
    np.testing.assert_allclose(matrix, expected, atol=1e-6)


def test_syncnet_crops_cannot_be_scored_by_an_asd_model_nor_serve_detect_sync():
    with pytest.raises(InputError, match="crop must be asd"):
        Detector(model="light-asd", weights=WEIGHTS, crop="syncnet")
    with pytest.raises(InputError, match="unknown crop"):
        Detector(score=False, crop="rgb")
    # Refused before any SyncNet weights are looked for.
    with pytest.raises(InputError, match="syncasd sync"):
        Detector(model="light-asd", weights=WEIGHTS, sync=True, sync_model="syncnet-v2")
