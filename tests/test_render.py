"""render_video on real clips: output streams, timing, trimming and box colours."""

from __future__ import annotations

from fractions import Fraction
from itertools import islice
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import video_copy

from syncasd.errors import MediaError
from syncasd.render import render_video
from syncasd.results import Result, Track

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
CLIPS = DATA / "clips"
needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"test media not found at {DATA.resolve()}"
)

VASP = CLIPS / "vasp" / "ID1" / "014.mp4"  # 224x224, 25 fps, AAC
LIVEPORTRAIT_30FPS = CLIPS / "liveportrait" / "d18.mp4"  # 480x480, 30 fps, AAC
LIVEPORTRAIT_SILENT = CLIPS / "liveportrait" / "d0.mp4"  # 512x512, 25 fps, no audio
GRID = CLIPS / "grid" / "bbaf2n.mpg"  # 360x288, 25 fps, MP2
BOX = (40.0, 30.0, 180.0, 200.0)


def make_result(path: Path, start: float = 0.0, n_frames: int = 100) -> Result:
    """One track over every model frame: speaking in the first half, silent in the second."""
    with av.open(str(path)) as c:
        video = c.streams.video[0]
        width, height, fps = video.width, video.height, float(video.average_rate)
    frames = np.arange(n_frames)
    probs = np.where(frames < n_frames // 2, 0.9, 0.1)
    track = Track(
        id=3,
        shot=0,
        frames=frames,
        boxes=np.tile(np.array(BOX), (n_frames, 1)),
        logits=np.log(probs / (1 - probs)),
        probs=probs,
    )
    return Result(
        path=str(path),
        video_id=path.stem,
        width=width,
        height=height,
        source_fps=fps,
        start=start,
        n_frames=n_frames,
        tracks=[track],
    )


def probe(path: Path) -> dict:
    with av.open(str(path)) as c:
        video = c.streams.video[0]
        audio = c.streams.audio[0] if c.streams.audio else None
        info = {
            "size": (video.width, video.height),
            "rate": video.average_rate,
            "duration": c.duration / 1e6,
            "audio": audio.codec_context.name if audio is not None else None,
        }
        info["frames"] = [f.to_ndarray(format="rgb24") for f in c.decode(video)]
    return info


def left_edge(rgb: np.ndarray) -> np.ndarray:
    """Mean RGB of the box's left border, away from the label and the corners."""
    x = int(BOX[0])
    return rgb[60:170, x : x + 2].reshape(-1, 3).mean(axis=0)


@needs_data
def test_render_draws_boxes_with_speaking_colours(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    render_video(make_result(VASP), out)

    info = probe(out)
    assert info["audio"] == "aac"
    assert info["size"] == (224, 224)
    assert abs(len(info["frames"]) - 100) <= 1
    assert info["duration"] == pytest.approx(4.0, abs=0.1)
    r, g, _ = left_edge(info["frames"][10])
    assert g > 200 and r < 60, "speaking box should be green"
    r, g, _ = left_edge(info["frames"][90])
    assert r > 200 and g < 60, "silent box should be red"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


@needs_data
def test_render_starts_at_result_start(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    render_video(make_result(VASP, start=2.0, n_frames=50), out)

    info = probe(out)
    assert info["audio"] == "aac"
    assert abs(len(info["frames"]) - 50) <= 1
    assert info["duration"] == pytest.approx(2.0, abs=0.1)
    # The first output frame is the source frame at 2 s: compare away from the drawings.
    with av.open(str(VASP)) as c:
        source = [f.to_ndarray(format="rgb24") for f in islice(c.decode(video=0), 51)]
    first = info["frames"][0][:, 190:].astype(float)
    at_start = np.abs(first - source[50][:, 190:]).mean()
    at_zero = np.abs(first - source[0][:, 190:]).mean()
    assert at_start < at_zero / 2


@needs_data
def test_render_keeps_source_frame_rate(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    render_video(make_result(LIVEPORTRAIT_30FPS, n_frames=50), out)

    info = probe(out)
    assert info["rate"] == 30
    assert info["size"] == (480, 480)
    assert abs(len(info["frames"]) - 60) <= 1
    assert info["duration"] == pytest.approx(2.0, abs=0.1)
    assert info["audio"] == "aac"


def render_grid_copy(tmp_path: Path, n_frames: int, **stored: object) -> tuple[dict, np.ndarray]:
    """Render a result over a copy of the GRID clip stored as `stored` says (`video_copy`'s
    rotation or pixel aspect), its boxes in the clip's own displayed coordinates; the output's
    `probe` and the GRID clip's first frame (RGB, float) to compare with."""
    copy = tmp_path / "stored.mp4"
    video_copy(copy, GRID, n_frames / 25, **stored)
    result = make_result(GRID, n_frames=n_frames)
    result.path = str(copy)
    out = tmp_path / "out.mp4"
    render_video(result, out)
    with av.open(str(GRID)) as c:
        source = next(c.decode(video=0)).to_ndarray(format="rgb24").astype(float)
    return probe(out), source


@needs_data
def test_render_of_a_phone_video_is_upright(tmp_path: Path) -> None:
    # Stored turned a quarter with a display matrix: boxes are in upright coordinates, so the
    # rendering is drawn and written upright (no display matrix left to apply).
    info, source = render_grid_copy(tmp_path, 50, rotation=-90)
    assert info["size"] == (360, 288)
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert next(c.decode(video=0)).rotation == 0
    r, g, _ = left_edge(info["frames"][10])
    assert g > 200 and r < 60, "speaking box should be green"
    # Away from the box and its label: the source's own first frame, upright.
    first = info["frames"][0].astype(float)
    assert np.abs(first[:, 190:] - source[:, 190:]).mean() < 6
    assert np.abs(np.rot90(first, 2)[:, 190:] - source[:, 190:]).mean() > 20


@needs_data
def test_render_reencodes_audio_mp4_cannot_hold(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    render_video(make_result(GRID, start=1.0, n_frames=25), out)

    info = probe(out)
    assert info["audio"] == "aac"
    assert info["size"] == (360, 288)
    assert abs(len(info["frames"]) - 25) <= 1


@needs_data
def test_render_without_audio(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    render_video(make_result(LIVEPORTRAIT_SILENT, n_frames=25), out)

    info = probe(out)
    assert info["audio"] is None
    assert abs(len(info["frames"]) - 25) <= 1


def test_render_failure_raises_media_error_and_leaves_nothing(tmp_path: Path) -> None:
    result = Result(
        path=str(tmp_path / "missing.mp4"),
        video_id="missing",
        width=224,
        height=224,
        source_fps=25.0,
        start=0.0,
        n_frames=10,
        tracks=[],
    )
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(MediaError, match="missing.mp4"):
        render_video(result, out_dir / "out.mp4")
    assert list(out_dir.iterdir()) == []


@needs_data
def test_render_of_an_anamorphic_video_has_square_pixels(tmp_path: Path) -> None:
    info, source = render_grid_copy(tmp_path, 25, pixel_aspect=Fraction(4, 3))
    assert info["size"] == (360, 288)
    assert np.abs(info["frames"][0][:, 190:].astype(float) - source[:, 190:]).mean() < 6
