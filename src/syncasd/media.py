"""Media I/O with PyAV: probe, 16 kHz mono int16 audio, streaming video on the 25 fps timeline.

Times are seconds from the first video frame of the source (what a player shows as 0:00).
Images are as a player shows them: upright (phones store portrait video as landscape pixels
plus a display matrix that turns them, and a face lying on its side is not one our models know)
with square pixels (anamorphic video, e.g. 1440×1080 HDV or 720×576 broadcast, is stored
squeezed; the official crop is square, so a squeezed face would reach the models thin), and
progressive (an interlaced frame weaves two fields 20 ms apart, which combs a moving mouth).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from .errors import MediaError
from .timebase import MODEL_FPS, SAMPLE_RATE, SAMPLES_PER_FRAME


@dataclass(frozen=True)
class MediaInfo:
    path: str
    width: int  # as displayed: pixels made square, then turned by `rotation`
    height: int
    fps: float  # average source frame rate
    duration: float  # seconds, from the container
    origin: float  # source time of the first video frame; all our times are relative to it
    has_audio: bool
    video_codec: str
    audio_codec: str | None
    rotation: int = 0  # degrees counter-clockwise the display matrix turns the stored pixels
    audio_stream: int | None = None  # which audio track is heard, counted among audio tracks
    audio_streams: int = 0  # how many audio tracks the file has
    audio_language: str | None = None  # the heard track's language tag, where it has one


def quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns that make `frame` upright (its display matrix, rounded to
    the nearest quarter; FFmpeg's command line turns video the same way by default)."""
    return round(frame.rotation / 90) % 4


def square_size(width: int, height: int, pixel_aspect: Fraction | None) -> tuple[int, int]:
    """The size of a `width`×`height` picture of pixels `pixel_aspect` (width / height) wide
    once its pixels are square: the short dimension stretched, so that no detail is lost."""
    if not pixel_aspect or pixel_aspect == 1:
        return width, height
    if pixel_aspect > 1:
        return round(width * pixel_aspect), height
    return width, round(height / pixel_aspect)


def upright_bgr(frame: av.VideoFrame, pixel_aspect: Fraction | None = None) -> np.ndarray:
    """The frame as a player shows it: H×W×3 uint8 BGR, deinterlaced, its pixels made square
    (the stream's `pixel_aspect`), then turned by its display matrix."""
    image = frame.to_ndarray(format="bgr24")
    size = square_size(frame.width, frame.height, pixel_aspect)
    if frame.interlaced_frame:
        # One field, line-doubled ("bob"): half the vertical detail, which a 112-pixel face
        # crop does not miss, and no frame of delay, which a temporal deinterlacer would add.
        image = cv2.resize(image[::2], size, interpolation=cv2.INTER_LINEAR)
    elif size != (frame.width, frame.height):
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    k = quarter_turns(frame)
    return np.ascontiguousarray(np.rot90(image, k)) if k else image


def pixel_aspect(stream: av.VideoStream) -> Fraction | None:
    """The stream's sample (pixel) aspect ratio; None where it says nothing or 1."""
    sar = stream.sample_aspect_ratio
    return Fraction(sar) if sar and sar > 0 and sar != 1 else None


def _first_frame_turns(container: av.container.InputContainer, stream: av.VideoStream) -> int:
    # The stream's display matrix is not exposed by PyAV; every decoded frame carries it.
    try:
        for frame in container.decode(stream):
            return quarter_turns(frame)
    except av.FFmpegError:
        pass  # a damaged file: reading its frames will say so
    return 0


def _open(path: str | Path) -> av.container.InputContainer:
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{p}: no such file")
    if p.is_dir():
        raise MediaError(f"{p}: is a directory, not a video file")
    if p.stat().st_size == 0:
        raise MediaError(f"{p}: file is empty (0 bytes)")
    try:
        return av.open(str(p))
    except av.FFmpegError as e:
        raise MediaError(
            f"{p}: not a readable video file ({e.strerror or e}); it is damaged, truncated "
            "or not a video"
        ) from None


def pick_audio_stream(
    container: av.container.InputContainer, path: str | Path, index: int | None = None
) -> av.AudioStream | None:
    """The audio track to hear: the `index`-th (0-based, counting audio tracks only) when
    given, else the one flagged default, as players choose, else the first; None where the
    file has none. A film may carry its original voices and dubs side by side."""
    tracks = list(container.streams.audio)
    if not tracks:
        return None
    if index is not None:
        if not 0 <= index < len(tracks):
            raise MediaError(
                f"{path}: --audio-stream {index} is not one of its {len(tracks)} audio track(s); "
                f"choose 0 to {len(tracks) - 1}"
            )
        return tracks[index]
    return next((s for s in tracks if s.disposition & av.stream.Disposition.default), tracks[0])


def _video_stream(container: av.container.InputContainer, path: str | Path) -> av.VideoStream:
    if not container.streams.video:
        raise MediaError(f"{path}: contains no video stream")
    return container.streams.video[0]


def probe(path: str | Path, audio_stream: int | None = None) -> MediaInfo:
    """Read stream properties without decoding; raises MediaError for files we cannot use.
    `audio_stream`: the audio track to hear (`pick_audio_stream`)."""
    with _open(path) as c:
        v = _video_stream(c, path)
        if not v.width or not v.height:
            raise MediaError(f"{path}: video stream has no frame size (damaged or unsupported)")
        fps = float(v.average_rate or v.guessed_rate or 0) or float(MODEL_FPS)
        origin = float(v.start_time * v.time_base) if v.start_time is not None else 0.0
        duration = _stated_duration(c, v) - origin
        a = pick_audio_stream(c, path, audio_stream)
        turns = _first_frame_turns(c, v)
        width, height = square_size(v.width, v.height, pixel_aspect(v))
        if turns % 2:
            width, height = height, width
        return MediaInfo(
            path=str(path),
            width=width,
            height=height,
            fps=fps,
            duration=duration,
            origin=origin,
            has_audio=a is not None,
            video_codec=v.codec_context.name,
            audio_codec=a.codec_context.name if a is not None else None,
            rotation=90 * turns,
            audio_stream=list(c.streams.audio).index(a) if a is not None else None,
            audio_streams=len(c.streams.audio),
            audio_language=a.metadata.get("language") if a is not None else None,
        )


def read_audio(
    path: str | Path,
    start: float = 0.0,
    duration: float | None = None,
    origin: float | None = None,
    audio_stream: int | None = None,
) -> np.ndarray:
    """Decode an audio track (`audio_stream`, as `pick_audio_stream` reads it: by default the
    one players play) to 16 kHz mono int16, aligned to the video's time origin.

    Sample n lies at time `start + n / SAMPLE_RATE`. Raises MediaError if there is no audio
    stream or it cannot be decoded.
    """
    if origin is None:
        origin = probe(path).origin
    with _open(path) as c:
        track = pick_audio_stream(c, path, audio_stream)
        if track is None:
            raise MediaError(
                f"{path}: has no audio track; active speaker detection needs the soundtrack"
            )
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        t0 = origin + start
        if start > 0:
            c.seek(int(max(t0 - 1.0, 0) / track.time_base), stream=track)
        chunks: list[np.ndarray] = []
        first_time: float | None = None
        n = 0
        limit = None if duration is None else int(round((duration + 1.0) * SAMPLE_RATE))
        try:
            for frame in c.decode(track):
                if first_time is None and frame.time is not None:
                    first_time = frame.time
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    n += chunk.size
                if limit is not None and first_time is not None:
                    if n - (t0 - first_time) * SAMPLE_RATE > limit:
                        break
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.FFmpegError as e:
            at = (first_time or 0.0) + n / SAMPLE_RATE
            raise MediaError(
                f"{path}: truncated or damaged: audio stops decoding at {at:.1f} s "
                f"({e.strerror or e})"
            ) from None
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    if first_time is None:
        first_time = origin
    # Shift so that sample 0 is at time t0: drop what came before, pad if the audio starts late.
    shift = int(round((t0 - first_time) * SAMPLE_RATE))
    if shift >= 0:
        audio = audio[shift:]
    else:
        audio = np.concatenate([np.zeros(-shift, np.int16), audio])
    if duration is not None:
        audio = audio[: int(round(duration * SAMPLE_RATE))]
    return np.ascontiguousarray(audio, dtype=np.int16)


@dataclass
class TimelineFrame:
    index: int  # model frame (25 fps tick) index
    time: float  # source time (s, from the origin) of the source frame shown at this tick
    image: np.ndarray  # H×W×3 uint8 BGR, full resolution, as displayed (module docstring)


def iter_frames(
    path: str | Path,
    start: float = 0.0,
    duration: float | None = None,
    origin: float | None = None,
    threads: int = 0,
) -> Iterator[TimelineFrame]:
    """Stream frames on the 25 fps model timeline: for each tick, the nearest source frame.

    Tick k lies at `start + k / 25`. Any source rate (25, 29.97, 50, variable) maps by nearest
    timestamp; a source frame repeats (slower sources) or is skipped (faster ones) without
    re-encoding. Skipped frames are never converted to arrays.
    """
    if origin is None:
        origin = probe(path).origin
    end = math.inf if duration is None else start + duration
    with _open(path) as c:
        stream = _video_stream(c, path)
        stream.thread_type = "AUTO"
        aspect = pixel_aspect(stream)
        if threads:
            stream.codec_context.thread_count = threads
        if start > 0:
            c.seek(int(max(origin + start - 1.0, 0) / stream.time_base), stream=stream)
        k = 0
        tick = start
        prev: tuple[float, av.VideoFrame] | None = None
        prev_image: tuple[int, np.ndarray] | None = None  # cache: id of frame, its array
        step = 1.0 / MODEL_FPS
        last_dt = step
        try:
            for frame in c.decode(stream):
                if frame.pts is None:
                    continue
                t = float(frame.pts * stream.time_base) - origin
                if prev is not None and t > prev[0]:
                    last_dt = t - prev[0]
                while tick <= t and tick < end:
                    # Nearest of the previous and the current frame.
                    # A tie (tick halfway between two frames) goes to the later frame, whatever
                    # float noise says, so no frame repeats and none is skipped.
                    use_prev = prev is not None and (tick - prev[0]) < (t - tick) - 1e-6
                    chosen_t, chosen = prev if use_prev else (t, frame)
                    if chosen_t < start - step / 2:
                        # Before the requested start (after a backward seek): not on our timeline.
                        break
                    if prev_image is None or prev_image[0] != id(chosen):
                        prev_image = (id(chosen), upright_bgr(chosen, aspect))
                    yield TimelineFrame(k, chosen_t, prev_image[1])
                    k += 1
                    tick = start + k * step
                if tick >= end:
                    return
                prev = (t, frame)
        except av.FFmpegError as e:
            raise MediaError(
                f"{path}: truncated or damaged: video stops decoding at {tick:.1f} s "
                f"({e.strerror or e})"
            ) from None
        # The stream ended on its own: well before its announced duration means damage.
        stated = _stated_duration(c, stream) - origin
        reached = prev[0] + last_dt if prev is not None else 0.0
        if stated - reached > max(1.0, 0.05 * stated) and reached < end:
            raise MediaError(
                f"{path}: truncated or damaged: video frames stop at {reached:.1f} s of "
                f"{stated:.1f} s"
            )
        # Ticks up to the end of the last frame's display interval.
        if prev is not None:
            stop = min(prev[0] + last_dt, end)
            while tick < stop - 1e-6:
                if prev_image is None or prev_image[0] != id(prev[1]):
                    prev_image = (id(prev[1]), upright_bgr(prev[1], aspect))
                yield TimelineFrame(k, prev[0], prev_image[1])
                k += 1
                tick = start + k * step


def _stated_duration(container: av.container.InputContainer, stream: av.VideoStream) -> float:
    """What the file announces for the video stream, in source seconds (nan when it does not
    say)."""
    start = float((stream.start_time or 0) * stream.time_base) if stream.time_base else 0.0
    if stream.duration is not None and stream.time_base is not None:
        return start + float(stream.duration * stream.time_base)
    # Matroska (.mkv, .webm) gives streams no duration field but a DURATION tag each; the
    # container's is the longest stream's, and a soundtrack running on after the pictures
    # is no damage to them.
    if tagged := _tag_seconds(stream.metadata.get("DURATION")):
        return start + tagged
    if container.duration is not None:
        return ((container.start_time or 0) + container.duration) / av.time_base
    return math.nan


def _tag_seconds(tag: str | None) -> float | None:
    """'HH:MM:SS.fraction' (Matroska's DURATION tag) in seconds; None if absent or odd."""
    try:
        hours, minutes, seconds = (tag or "").split(":")
        return 3600 * int(hours) + 60 * int(minutes) + float(seconds)
    except ValueError:
        return None


def model_frame_count(n_samples: int) -> int:
    """Whole 25 fps frames covered by `n_samples` of 16 kHz audio."""
    return n_samples // SAMPLES_PER_FRAME


__all__ = [
    "MediaInfo",
    "TimelineFrame",
    "probe",
    "read_audio",
    "iter_frames",
    "model_frame_count",
    "pixel_aspect",
    "quarter_turns",
    "square_size",
    "upright_bgr",
]
