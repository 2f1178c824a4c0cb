"""syncasd.media on real clips: probe, 16 kHz audio and the 25 fps frame timeline."""

from __future__ import annotations

from fractions import Fraction
from itertools import islice
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import DATA, FIXTURES, lag, needs_shared, restamped, soundtracks, video_copy

from syncasd.errors import MediaError
from syncasd.media import iter_frames, probe, read_audio

CLIP014 = DATA / "clips" / "vasp" / "ID1" / "014.mp4"  # 224×224, 25 fps, 251 frames, AAC 16 kHz
CLIP30 = DATA / "clips" / "liveportrait" / "d10.mp4"  # 512×512, 30 fps, 448 frames, AAC 44.1 kHz
NO_AUDIO = DATA / "clips" / "liveportrait" / "d0.mp4"
GRID = DATA / "clips" / "grid" / "bbaf2n.mpg"  # 360×288, 25 fps
CLIP30_FRAMES = 448


@pytest.fixture(scope="module")
def audio014() -> np.ndarray:
    return np.load(FIXTURES / "inputs" / "clip014_audio16k_int16.npy")


def _nearest_30fps_frame(tick_time: float) -> int:
    """Index of the 30 fps source frame nearest to a time (never a tie on the 25 fps grid)."""
    return min(round(tick_time * 30), CLIP30_FRAMES - 1)


# --- probe ------------------------------------------------------------------------------------


@needs_shared
def test_probe_25fps_clip_with_audio():
    info = probe(CLIP014)
    assert (info.width, info.height) == (224, 224)
    assert info.fps == 25.0
    assert info.duration == pytest.approx(10.04)
    assert info.origin == 0.0
    assert info.has_audio
    assert info.video_codec == "h264"
    assert info.audio_codec == "aac"
    assert info.rotation == 0


@needs_shared
def test_probe_30fps_clip():
    info = probe(CLIP30)
    assert (info.width, info.height) == (512, 512)
    assert info.fps == 30.0
    assert info.duration == pytest.approx(CLIP30_FRAMES / 30)
    assert info.has_audio


def test_probe_missing_file(tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        probe(tmp_path / "missing.mp4")


def test_probe_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(MediaError, match="empty"):
        probe(path)


def test_probe_text_file(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 20)
    with pytest.raises(MediaError, match="not a readable video"):
        probe(path)


# --- read_audio -------------------------------------------------------------------------------


@needs_shared
def test_read_audio_matches_ffmpeg_wav(audio014):
    audio = read_audio(CLIP014)
    assert audio.dtype == np.int16
    assert audio.shape == audio014.shape == (160768,)
    assert np.abs(audio.astype(np.int32) - audio014).max() <= 1


@needs_shared
def test_read_audio_window(audio014):
    audio = read_audio(CLIP014, start=2, duration=3)
    assert audio.shape == (48000,)
    expected = audio014[2 * 16000 : 5 * 16000]
    # Seek-decoding AAC is not bit-exact (noise substitution), but the samples must line up.
    assert np.corrcoef(audio.astype(np.float64), expected)[0, 1] > 0.99


@needs_shared
def test_read_audio_without_audio_stream():
    with pytest.raises(MediaError, match="no audio"):
        read_audio(NO_AUDIO)


# --- iter_frames ------------------------------------------------------------------------------


@needs_shared
@pytest.mark.parametrize("audio_delay, video_delay", [(0.4, 0.0), (0.0, 0.4)])
def test_streams_that_start_apart_are_read_as_a_player_plays_them(
    tmp_path, audio_delay, video_delay
):
    """Streams often start at different times (an audio delay set in an editor, a broadcast
    capture): the audio is read on the video's clock, so the voice comes as much later (or
    earlier) than in the original, packets untouched."""
    source = DATA / "clips" / "lrs2" / "00001.mp4"
    moved = restamped(source, tmp_path / "restamped.mp4", audio_delay, video_delay)
    assert probe(moved).origin == pytest.approx(video_delay, abs=1e-3)
    expected = round((audio_delay - video_delay) * 16000)  # 6400 samples: 10 frames
    assert abs(lag(read_audio(source), read_audio(moved)) - expected) <= 16  # within 1 ms


@needs_shared
def test_iter_frames_25fps_whole_clip():
    frames = list(iter_frames(CLIP014))
    assert len(frames) == 251
    assert [f.index for f in frames] == list(range(251))
    np.testing.assert_allclose([f.time for f in frames], np.arange(251) / 25, atol=1e-9)
    gray = np.stack([cv2.cvtColor(f.image, cv2.COLOR_BGR2GRAY)[56:168, 56:168] for f in frames])
    np.testing.assert_array_equal(gray, np.load(FIXTURES / "inputs" / "clip014_gray112.npy"))


@needs_shared
def test_iter_frames_bgr_matches_opencv_decode():
    frames = [f.image for f in iter_frames(CLIP014, duration=0.4)]
    assert len(frames) == 10
    expected = np.load(FIXTURES / "inputs" / "clip014_bgr224_first10.npy")
    np.testing.assert_array_equal(np.stack(frames), expected)


@needs_shared
def test_iter_frames_window_25fps():
    frames = list(iter_frames(CLIP014, start=3.0, duration=2.0))
    assert len(frames) == 50
    assert frames[0].index == 0
    assert frames[0].time == pytest.approx(3.0)
    np.testing.assert_allclose([f.time for f in frames], 3.0 + np.arange(50) / 25, atol=1e-9)


@needs_shared
def test_iter_frames_30fps_maps_ticks_to_nearest_source_frame():
    frames = list(iter_frames(CLIP30))
    # Ticks run to the end of the last frame's display interval: k/25 < 448/30.
    assert len(frames) == 374
    expected = [_nearest_30fps_frame(k / 25) / 30 for k in range(374)]
    np.testing.assert_allclose([f.time for f in frames], expected, atol=1e-9)
    # Tick 3 (0.12 s) shows source frame 4 (0.133 s); source frame 3 (0.1 s) is skipped.
    assert frames[3].time == pytest.approx(4 / 30)


@needs_shared
def test_iter_frames_30fps_images_are_the_chosen_source_frames():
    with av.open(str(CLIP30)) as c:
        source = [f.to_ndarray(format="bgr24") for f in islice(c.decode(video=0), 15)]
    for f in iter_frames(CLIP30, duration=0.4):
        np.testing.assert_array_equal(f.image, source[_nearest_30fps_frame(f.index / 25)])


@needs_shared
def test_iter_frames_window_30fps():
    frames = list(iter_frames(CLIP30, start=2.0, duration=1.0))
    assert len(frames) == 25
    assert frames[0].index == 0
    assert frames[0].time == pytest.approx(2.0)
    expected = [_nearest_30fps_frame(2.0 + k / 25) / 30 for k in range(25)]
    np.testing.assert_allclose([f.time for f in frames], expected, atol=1e-9)


def _encode(path, times: list[float], size: int = 64) -> None:
    """A video whose frame k shows gray level 4k and is stamped at times[k] (ms time base)."""
    with av.open(str(path), "w") as c:
        stream = c.add_stream("mpeg4", rate=1000)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 20_000_000  # near-lossless, so each frame's gray level survives
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        for k, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), 4 * k, np.uint8), "rgb24")
            frame.pts = round(t * 1000)
            frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)


def _nearest(times: list[float], tick: float) -> float:
    return min(times, key=lambda t: (abs(t - tick), -t))


@pytest.mark.parametrize(
    "name, times",
    [
        ("50fps", [k / 50 for k in range(50)]),
        # Variable frame rate: 30 ms and 50 ms intervals alternating.
        ("vfr", [round(0.04 * k + (0.01 if k % 2 else 0.0), 3) for k in range(25)]),
    ],
)
def test_iter_frames_any_rate_maps_each_tick_to_the_nearest_frame(tmp_path, name, times):
    path = tmp_path / f"{name}.mp4"
    _encode(path, times)
    frames = list(iter_frames(path))
    span = times[-1] + (times[-1] - times[-2])
    assert len(frames) == int(np.ceil(span * 25 - 1e-6))
    for f in frames:
        expected = _nearest(times, f.index / 25)
        assert f.time == pytest.approx(expected, abs=1e-6), f.index
        # The image is that source frame's (gray level 4k, within codec noise).
        k = times.index(expected)
        assert abs(float(f.image.mean()) - 4 * k) < 3


# --- display rotation (phone video) -------------------------------------------------------------


@needs_shared
@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_phone_video_is_probed_and_read_upright(tmp_path, rotation):
    video = tmp_path / "phone.mp4"
    video_copy(video, GRID, 1.0, rotation=rotation)
    with av.open(str(video)) as c:
        stored = next(c.decode(video=0)).to_ndarray(format="bgr24")
    assert stored.shape[:2] == ((360, 288) if rotation % 180 else (288, 360))

    info = probe(video)
    assert info.rotation == rotation % 360
    assert (info.width, info.height) == (360, 288)
    first = next(iter_frames(video, origin=info.origin)).image
    assert first.shape == (288, 360, 3)
    np.testing.assert_array_equal(first, np.rot90(stored, rotation // 90))
    # Upright is the source as it was (up to re-encoding), not the stored pixels turned wrong.
    source = next(iter_frames(GRID)).image.astype(float)
    assert np.abs(first - source).mean() < 4
    assert np.abs(np.rot90(first, 2) - source).mean() > 20


@needs_shared
def test_anamorphic_video_is_read_with_square_pixels(tmp_path):
    # 360×288 squeezed to 270×288, its pixels flagged 4:3 wide (as HDV and DVB store video).
    video = tmp_path / "anamorphic.mp4"
    video_copy(video, GRID, 1.0, pixel_aspect=Fraction(4, 3))
    with av.open(str(video)) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (270, 288)
    info = probe(video)
    assert (info.width, info.height) == (360, 288)
    first = next(iter_frames(video, origin=info.origin)).image
    assert first.shape == (288, 360, 3)
    source = next(iter_frames(GRID)).image.astype(float)
    assert np.abs(first - source).mean() < 4


def _comb(image: np.ndarray) -> float:
    """Mean difference between each even row and the odd row below it: combing shows here."""
    image = image.astype(float)
    return float(np.abs(image[0:-1:2] - image[1::2]).mean())


@needs_shared
def test_interlaced_video_is_read_progressive(tmp_path):
    # Broadcast-style interlacing: each coded frame weaves its top field from one source frame
    # and its bottom field from the next (two fields of a 50-field/s camera).
    source = [f.image for f in iter_frames(CLIP014, duration=1.6)]
    video = tmp_path / "interlaced.mp4"
    with av.open(str(video), "w") as c:
        stream = c.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 224, 224, "yuv420p"
        stream.codec_context.options = {"x264-params": "interlaced=1:tff=1", "crf": "12"}
        for i in range(0, len(source) - 1, 2):
            woven = source[i].copy()
            woven[1::2] = source[i + 1][1::2]
            c.mux(stream.encode(av.VideoFrame.from_ndarray(woven[..., ::-1].copy(), "rgb24")))
        c.mux(stream.encode())
    with av.open(str(video)) as c:
        coded = [f for f in c.decode(video=0)]
        assert all(f.interlaced_frame for f in coded)
        stored = [f.to_ndarray(format="bgr24") for f in coded]

    read = [f.image for f in iter_frames(video)]
    assert len(read) == len(stored) == 20
    np.testing.assert_array_equal(
        read[5], cv2.resize(stored[5][::2], (224, 224), interpolation=cv2.INTER_LINEAR)
    )
    # The woven frames comb where the face moves; what we read does not, as the source did not.
    for j in (3, 7, 11, 15):
        assert _comb(stored[j]) > 1.3 * _comb(source[2 * j])
        assert _comb(read[j]) < 1.1 * _comb(source[2 * j])


@needs_shared
def test_a_film_with_several_audio_tracks_is_heard_as_players_play_it(tmp_path):
    own, dub = CLIP014, DATA / "clips" / "vasp" / "ID2" / "013.mp4"
    film = soundtracks(tmp_path / "film.mkv", own, [own, dub], default=1, languages=["eng", "fra"])
    info = probe(film)
    assert (info.audio_stream, info.audio_streams, info.audio_language) == (1, 2, "fra")
    assert probe(film, 0).audio_language == "eng"

    def heard(samples: np.ndarray, voice: Path) -> float:
        """Correlation of `samples` with `voice` as read on its own (AAC twice: not equal)."""
        reference = read_audio(voice).astype(np.float64)
        n = min(len(samples), len(reference)) - 2048  # the encoder's tail
        return float(np.corrcoef(samples[:n].astype(np.float64), reference[:n])[0, 1])

    assert heard(read_audio(film), dub) > 0.95  # the default track
    assert heard(read_audio(film, audio_stream=0), own) > 0.95
    assert abs(heard(read_audio(film, audio_stream=0), dub)) < 0.1
    with pytest.raises(MediaError, match="--audio-stream 2 is not one of its 2 audio track"):
        read_audio(film, audio_stream=2)
    with pytest.raises(MediaError, match="choose 0 to 1"):
        probe(film, 5)


@needs_shared
def test_a_matroska_soundtrack_that_outlasts_the_pictures_is_no_damage(tmp_path):
    # Matroska states no stream duration, only a DURATION tag per stream; the container's
    # duration is the longest stream's. Here the default track (8.2 s) runs on 4 s after the
    # 4.2 s of pictures, which were once refused as "truncated or damaged".
    own, long_voice = DATA / "clips" / "voxceleb2" / "id00100_yMLqymKvTfA_00043.mp4", CLIP014
    film = soundtracks(tmp_path / "film.mkv", own, [own, long_voice], 1, ["eng", "fra"])
    with av.open(str(film)) as c:
        assert c.streams.video[0].duration is None and c.duration / 1e6 > 8.0  # the premise
    assert probe(film).duration == pytest.approx(4.24, abs=0.01)
    assert sum(1 for _ in iter_frames(film)) == 106
