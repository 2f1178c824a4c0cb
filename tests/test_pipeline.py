"""End to end through `syncasd.detect` on real clips: real decode, detector, tracker, model."""

from __future__ import annotations

import av
import numpy as np
import pytest
from conftest import DATA, needs_shared, video_copy

import syncasd
import syncasd.models
from syncasd import media

pytestmark = needs_shared

WEIGHTS = DATA / "weights" / "light_asd_ava.model"
CLIP = DATA / "clips" / "vasp" / "ID1" / "014.mp4"
OTHER = DATA / "clips" / "vasp" / "ID10" / "017.mp4"


@pytest.fixture(scope="module")
def detector() -> syncasd.Detector:
    return syncasd.Detector(model="light-asd", weights=str(WEIGHTS), allow_silent=True)


def speech_frames(path, n_frames: int) -> np.ndarray:
    """Frames whose audio energy is well above the clip's quiet floor (a simple VAD)."""
    audio = media.read_audio(path).astype(np.float64)[: n_frames * 640]
    rms = np.sqrt((audio.reshape(-1, 640) ** 2).mean(axis=1))
    return rms > 0.2 * np.percentile(rms, 95)


def test_single_speaker_clip_speaks_on_speech_frames(detector):
    result = detector(CLIP)
    assert result.n_frames == 251
    assert len(result.tracks) == 1
    track = result.tracks[0]
    assert (track.start, track.end) == (0, 250)
    speech = speech_frames(CLIP, result.n_frames)
    assert speech.mean() > 0.5
    speaking = track.probs >= 0.5
    # The visible face is the speaker: it is found speaking on most speech frames.
    assert speaking[speech].mean() > 0.85
    assert float(np.median(track.probs[speech])) > 0.8
    assert result.turns and all(t.track == 0 for t in result.turns)
    # The face box lies where the face is in this 224×224 crop.
    x1, y1, x2, y2 = np.median(track.boxes, axis=0)
    assert 40 < x1 < 80 and 150 < x2 < 190 and y1 < 30 and 130 < y2 < 180


def test_phone_video_is_analysed_upright(detector, tmp_path):
    # A portrait phone video: pixels stored on their side, a display matrix that turns them.
    # Read as stored, the face lies on its side and the model calls it silent (p ≈ 0.03).
    phone = tmp_path / "phone.mp4"
    video_copy(phone, CLIP, 4.0, rotation=90)
    result, reference = detector(phone), detector(CLIP)
    assert (result.width, result.height) == (224, 224)
    assert len(result.tracks) == len(reference.tracks) == 1
    track, ref = result.tracks[0], reference.tracks[0]
    assert len(track.probs) == 100
    ref_boxes, ref_probs = ref.boxes[:100], ref.probs[:100]  # the same 4 s of the clip
    np.testing.assert_allclose(np.median(track.boxes, axis=0), np.median(ref_boxes, axis=0), atol=6)
    assert ((track.probs >= 0.5) == (ref_probs >= 0.5)).mean() > 0.9
    assert float(np.median(track.probs)) > 0.8


def test_same_clip_with_silence_is_mostly_not_speaking(detector, tmp_path):
    from syncasd.data.compose import silence_audio

    silent = tmp_path / "silent.mp4"
    silence_audio(CLIP, silent)
    result = detector(silent)
    assert len(result.tracks) == 1
    probs = result.tracks[0].probs
    assert (probs >= 0.5).mean() < 0.1
    assert float(np.median(probs)) < 0.05
    assert result.turns == [] or sum(t.duration for t in result.turns) < 1.0


def test_two_faces_side_by_side_get_their_own_tracks(detector, tmp_path):
    from syncasd.data.compose import compose_side_by_side

    video = tmp_path / "two.mp4"
    tiles = compose_side_by_side([CLIP, OTHER], video, size=(640, 360), duration=4.0)
    result = detector(video)
    assert result.n_frames == 100
    assert len(result.tracks) == 2
    ids = {result.entity_id(t) for t in result.tracks}
    assert len(ids) == 2
    halves = []
    for track in result.tracks:
        assert len(track.frames) >= 95
        cx = (track.boxes[:, 0] + track.boxes[:, 2]) / 2
        half = "left" if cx.max() < 320 else "right" if cx.min() > 320 else "both"
        halves.append(half)
        tile = tiles[0] if half == "left" else tiles[1]
        # Each box stays inside its own tile.
        assert track.boxes[:, 0].min() >= tile[0] - 4 and track.boxes[:, 2].max() <= tile[2] + 4
    assert sorted(halves) == ["left", "right"]


def test_a_wide_shot_of_small_faces_is_found_by_zooming(detector, tmp_path):
    # Two people in a 1080p wide shot, faces about 70 px high: 23 px in the detector's
    # 640-px copy, where they go unseen; the zoom (1280 px) finds and tracks both.
    from syncasd.data.compose import compose_side_by_side

    video = tmp_path / "wide.mp4"
    tiles = compose_side_by_side(
        [CLIP, OTHER], video, size=(1920, 1080), duration=3.0, face_height=0.1, preset="veryfast"
    )
    result = detector(video)
    assert len(result.tracks) == 2
    for track, tile in zip(sorted(result.tracks, key=lambda t: t.boxes[0, 0]), tiles, strict=True):
        assert len(track.frames) >= 70
        heights = track.boxes[:, 3] - track.boxes[:, 1]
        assert 55 < np.median(heights) < 85
        assert track.boxes[:, 0].min() >= tile[0] - 4 and track.boxes[:, 2].max() <= tile[2] + 4
    assert result.metadata["zoomed_detections"] == 38  # every 2nd of the 75 frames
    unzoomed = syncasd.Detector(model="light-asd", weights=str(WEIGHTS), zoom_size=0)
    without = unzoomed(video)
    assert without.tracks == [] and without.metadata["zoomed_detections"] == 0


def test_only_the_wide_shot_between_two_close_ups_is_zoomed(detector, tmp_path):
    # Close-up, wide shot (faces 70 px high in 1080p), close-up: 3 s each, cut apart. Each
    # shot's first detection is probed; only the wide shot is detected at both sizes.
    from syncasd.data.compose import compose_side_by_side, replace_audio

    video = tmp_path / "shots.mp4"
    with av.open(str(tmp_path / "silent.mp4"), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.options = {"preset": "veryfast"}
        for i, face_height in enumerate((0.45, 0.1, 0.45)):
            part = tmp_path / f"shot{i}.mp4"
            compose_side_by_side(
                [CLIP, OTHER],
                part,
                size=(1920, 1080),
                duration=3.0,
                face_height=face_height,
                background=40 + 60 * i,
                preset="veryfast",
            )
            for frame in media.iter_frames(part):
                out.mux(stream.encode(av.VideoFrame.from_ndarray(frame.image, format="bgr24")))
        out.mux(stream.encode())
    replace_audio(tmp_path / "silent.mp4", video, audio=np.tile(media.read_audio(CLIP), 2))
    result = detector(video)
    spans = sorted((t.start, t.end, t.shot) for t in result.tracks)
    assert [(shot, first) for first, _, shot in spans] == [
        (0, 0),
        (0, 0),
        (1, 76),
        (1, 76),
        (2, 150),
        (2, 150),
    ]
    heights = {t.shot: np.median(t.boxes[:, 3] - t.boxes[:, 1]) for t in result.tracks}
    assert heights[1] < 85 < 300 < min(heights[0], heights[2])
    assert result.metadata["zoomed_detections"] == 37  # frames 76, 78, …, 148


def test_other_frame_rate_maps_to_25_fps_timeline(detector, tmp_path):
    from syncasd.data.compose import compose_side_by_side

    video = tmp_path / "ntsc.mp4"
    compose_side_by_side([CLIP], video, size=(640, 360), fps=30000 / 1001, duration=4.0)
    assert abs(media.probe(video).fps - 29.97) < 0.01
    result = detector(video)
    assert result.n_frames == 100  # 4 s on the 25 fps model timeline
    assert len(result.tracks) == 1
    speech = speech_frames(video, result.n_frames)
    assert (result.tracks[0].probs >= 0.5)[speech].mean() > 0.8


def test_start_and_duration_select_an_interval(detector):
    result = syncasd.Detector(model="light-asd", weights=str(WEIGHTS), start=2.0, duration=3.0)(
        CLIP
    )
    assert result.n_frames == 75
    assert result.start == 2.0
    assert float(result.timestamp(0)) == 2.0
    full = detector(CLIP).tracks[0]
    part = result.tracks[0]
    assert (part.start, part.end) == (0, 74)
    # Same face boxes as in the full run, 50 frames later.
    assert np.abs(part.boxes - full.boxes[50:125]).max() < 2.0


def test_demo_scoring_and_chunk_scoring_agree_on_decisions(detector):
    demo = syncasd.Detector(model="light-asd", weights=str(WEIGHTS), scoring="demo")(CLIP).tracks[0]
    chunk = detector(CLIP).tracks[0]
    agree = ((demo.probs >= 0.5) == (chunk.probs >= 0.5)).mean()
    assert agree > 0.95
    assert np.abs(demo.probs - chunk.probs).mean() < 0.1


def test_torch_and_ort_backends_agree(detector):
    torch_result = syncasd.Detector(model="light-asd", weights=str(WEIGHTS), backend="torch")(
        CLIP
    ).tracks[0]
    ort_result = detector(CLIP).tracks[0]
    assert np.abs(torch_result.logits - ort_result.logits).max() < 1e-3


def test_a_model_that_reads_the_log_mel_gets_it_on_both_backends():
    """The ic-gated model's audio input carries the 100-Hz log-mel beside the MFCCs, through
    the torch module and its ONNX export alike; the visible speaker is found speaking."""
    name = "sync-light-asd-talknet-icgated"
    results = [
        syncasd.Detector(model=name, backend=backend, duration=4.0)(CLIP).tracks[0]
        for backend in ("torch", "ort")
    ]
    assert np.abs(results[0].logits - results[1].logits).max() < 1e-3
    assert len(results[0].probs) == 100 and (results[0].probs >= 0.5).mean() > 0.7


def test_own_boxes_from_an_ava_csv(detector, tmp_path):
    from syncasd.results import write_csv

    first = detector(CLIP)
    boxes = tmp_path / "boxes.csv"
    write_csv(first, boxes)
    again = syncasd.Detector(model="light-asd", weights=str(WEIGHTS), faces_csv=str(boxes))(CLIP)
    assert len(again.tracks) == 1
    track = again.tracks[0]
    assert track.entity == "014:0"
    assert (track.start, track.end) == (0, 250)
    # Boxes round-trip through the CSV (normalised, clipped to the frame).
    assert np.abs(track.boxes - first.tracks[0].boxes).max() <= 3.0
    assert np.abs(track.probs - first.tracks[0].probs).mean() < 0.05


def test_detecting_every_few_frames_tracks_the_same_face(detector):
    every_frame = syncasd.Detector(model="light-asd", weights=str(WEIGHTS), detect_every=1)(
        CLIP
    ).tracks[0]
    every_third = syncasd.Detector(model="light-asd", weights=str(WEIGHTS), detect_every=3)(
        CLIP
    ).tracks[0]
    # The last detection (frame 249) vouches for the face until the clip ends at frame 250.
    assert (every_third.start, every_third.end) == (every_frame.start, every_frame.end) == (0, 250)
    assert np.abs(every_third.boxes - every_frame.boxes).mean() < 3.0
    agree = ((every_third.probs >= 0.5) == (every_frame.probs >= 0.5)).mean()
    assert agree > 0.95


def test_no_track_crosses_a_shot_cut(detector, tmp_path):
    """Two different faces at the same place, one after the other: the cut splits the tracks."""
    from syncasd.data.compose import replace_audio

    plain = tmp_path / "cut_plain.mp4"
    with av.open(str(plain), "w") as out:
        stream = out.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=25)
        stream.width = stream.height = 224
        stream.pix_fmt = "yuv420p"
        for clip in (CLIP, OTHER):
            for i, frame in enumerate(media.iter_frames(clip)):
                if i == 50:
                    break
                vf = av.VideoFrame.from_ndarray(frame.image, "bgr24")
                for packet in stream.encode(vf):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    video = tmp_path / "cut.mp4"
    replace_audio(plain, video, audio=media.read_audio(CLIP)[: 100 * 640])
    result = detector(video)
    assert len(result.tracks) == 2
    first, second = sorted(result.tracks, key=lambda t: t.start)
    assert first.end < 50 <= second.start
    assert first.end >= 45 and second.start <= 52
    assert first.shot != second.shot


@pytest.mark.parametrize("name", syncasd.models.available_models())
def test_every_registered_model_scores_a_real_clip(name, tmp_path):
    """Public weights where we have them, else the architecture's initial weights."""
    import torch

    from syncasd.models import get_spec

    shared = {"light-asd": WEIGHTS, "lr-asd": DATA / "weights" / "lr_asd_ava.model"}
    weights = shared.get(name)
    if weights is None:
        torch.manual_seed(0)
        weights = tmp_path / f"{name}.model"
        torch.save(get_spec(name).builder().state_dict(), weights)
    result = syncasd.Detector(model=name, weights=str(weights), duration=2.0)(CLIP)
    assert len(result.tracks) == 1
    track = result.tracks[0]
    assert len(track.probs) == len(track.frames) == 50
    assert np.isfinite(track.logits).all()
    assert ((track.probs >= 0) & (track.probs <= 1)).all()
    if name in shared:  # trained weights: the visible speaker is found speaking
        assert (track.probs >= 0.5).mean() > 0.7
