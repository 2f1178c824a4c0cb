"""Annotated video of a detection result: face boxes coloured by speaking state, source audio."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from tqdm import tqdm

from . import media
from .atomic import atomic_path
from .errors import MediaError
from .results import Result, Track
from .timebase import MODEL_FPS

__all__ = ["render_video"]

GREEN = (0, 255, 0)  # BGR, as OpenCV draws
RED = (0, 0, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX
MP4_AUDIO = {"aac", "mp3"}  # audio codecs copied as they are; anything else becomes AAC
AAC_RATES = {96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000}
AAC_FRAME = 1024
# Seek this far before `start`: demuxers land on a keyframe, and audio packets can be
# interleaved behind the video they belong to.
SEEK_MARGIN = 1.0
TIME_EPS = 1e-3  # s; frame times are rationals turned into floats


def render_video(result: Result, out_path: str | Path, *, progress: bool = False) -> None:
    """Write `result.path` over the analysed interval as an MP4 with the face boxes drawn.

    Boxes are green where the track speaks (probability ≥ `result.threshold`), red otherwise,
    labelled "track: probability". The output starts at `result.start`, lasts
    `result.n_frames / 25` s, keeps the source frame rate and size (odd sides padded by one
    pixel) and the source audio. The file appears at `out_path` only once it is complete.
    """
    out_path = Path(out_path)
    try:
        with atomic_path(out_path) as tmp:
            _render(result, str(tmp), progress)
    except av.FFmpegError as e:
        raise MediaError(f"cannot render {result.path} to {out_path}: {e}") from e


def _render(result: Result, tmp: str, progress: bool) -> None:
    with av.open(result.path) as src:
        if not src.streams.video or src.streams.video[0].codec_context is None:
            raise MediaError(f"{result.path} has no decodable video stream")
        vin = src.streams.video[0]
        vin.thread_type = "AUTO"
        # The track the analysis heard (the metadata say which), else as players choose.
        heard = result.metadata.get("source", {}).get("audio_stream")
        ain = media.pick_audio_stream(src, result.path, heard)
        if ain is not None and ain.codec_context is None:
            ain = None
        # Result times count from the video stream's first timestamp, not the container clock.
        origin = float(vin.start_time * vin.time_base) if vin.start_time is not None else 0.0
        t0 = origin + result.start
        t1 = t0 + result.n_frames / MODEL_FPS
        rate = vin.average_rate or vin.guessed_rate or Fraction(int(MODEL_FPS))
        rate = rate.limit_denominator(1001)  # variable-rate sources report unwieldy averages
        if result.start > 0:
            src.seek(max(0, int((t0 - SEEK_MARGIN) / vin.time_base)), stream=vin)

        with av.open(tmp, "w", format="mp4", options={"movflags": "+faststart"}) as dst:
            video = _VideoOut(dst, vin, rate, t0, result)
            audio = _AudioOut(dst, ain, t0, t1) if ain is not None else None
            total = round(result.n_frames / MODEL_FPS * float(rate))
            with tqdm(total=total, unit="frame", desc="render", disable=not progress) as bar:
                for t, frame in _frames(src, vin, audio, t0, t1):
                    video.write(t, frame)
                    bar.update()
            if video.count == 0:
                raise MediaError(
                    f"{result.path} has no video frames between {result.start:.3f} s and "
                    f"{result.start + result.n_frames / MODEL_FPS:.3f} s"
                )
            video.flush()
            if audio is not None:
                audio.flush()


def _frames(
    src: av.container.InputContainer,
    vin: av.VideoStream,
    audio: _AudioOut | None,
    t0: float,
    t1: float,
) -> Iterator[tuple[float, av.VideoFrame]]:
    """(time, frame) for the video frames in [t0, t1), from one demux pass that hands the audio
    packets to `audio`."""
    streams = [vin] if audio is None else [vin, audio.stream]
    video_done, audio_done = False, audio is None
    last = None
    for packet in src.demux(*streams):
        if packet.stream.type == "audio":
            if not audio_done:
                audio_done = audio.add(packet)
        elif not video_done:
            for frame in packet.decode():
                t = frame.time if frame.time is not None else last
                if t is None:
                    continue
                last = t
                if t >= t1 - TIME_EPS:
                    video_done = True
                    break
                if t >= t0 - TIME_EPS:
                    yield t, frame
        if video_done and audio_done:
            break


class _Overlay:
    """The boxes to draw at each model frame, asked for in non-decreasing frame order."""

    def __init__(self, tracks: list[Track]) -> None:
        self.pending = deque(sorted((t for t in tracks if len(t.frames)), key=lambda t: t.start))
        self.active: list[Track] = []

    def at(self, k: int) -> Iterator[tuple[int, np.ndarray, float]]:
        while self.pending and self.pending[0].start <= k:
            self.active.append(self.pending.popleft())
        self.active = [t for t in self.active if t.end >= k]
        for t in self.active:
            i = k - t.start
            if 0 <= i < len(t.frames) and t.frames[i] == k and np.isfinite(t.boxes[i]).all():
                yield t.id, t.boxes[i], float(t.probs[i])


class _I420:
    """An I420 image that OpenCV draws on in BGR: only the region around each drawing is
    converted, and only the pixels the drawing changed are written back, so the rest of the
    frame never goes through a lossy colour round trip."""

    def __init__(self, frame: av.VideoFrame, pixel_aspect: Fraction | None = None) -> None:
        turns = media.quarter_turns(frame)
        plain = pixel_aspect is None and not frame.interlaced_frame
        even = frame.width % 2 == 0 and frame.height % 2 == 0
        if frame.format.name == "yuv420p" and even and plain:
            data = frame.to_ndarray()
            if turns:  # upright, as the boxes are: each plane turned
                h, w = data.shape[0] * 2 // 3, data.shape[1]
                planes = [np.rot90(p, turns) for p in _split_i420(data, h, w)]
                data = np.concatenate([p.ravel() for p in planes]).reshape(-1, planes[0].shape[1])
        else:  # other layouts, non-square pixels, interlaced, odd sides padded for yuv420p
            bgr = media.upright_bgr(frame, pixel_aspect)
            h, w = bgr.shape[:2]
            bgr = cv2.copyMakeBorder(bgr, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)
            data = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)
        self.data = data if data.flags.writeable else data.copy()
        self.height, self.width = data.shape[0] * 2 // 3, data.shape[1]
        self.planes = _split_i420(self.data, self.height, self.width)

    def draw(
        self, x0: int, y0: int, x1: int, y1: int, paint: Callable[[np.ndarray, int, int], None]
    ) -> None:
        """Call `paint(bgr, left, top)` on a BGR copy of (at least) [x0, x1) x [y0, y1),
        whose top-left pixel is (left, top) of the frame."""
        x0, y0 = max(x0 - x0 % 2, 0), max(y0 - y0 % 2, 0)
        x1, y1 = min(x1 + x1 % 2, self.width), min(y1 + y1 % 2, self.height)
        if x1 <= x0 or y1 <= y0:
            return
        views = [
            plane[y0 // s : y1 // s, x0 // s : x1 // s]
            for plane, s in zip(self.planes, (1, 2, 2), strict=True)
        ]
        h, w = y1 - y0, x1 - x0
        crop = np.concatenate([v.ravel() for v in views]).reshape(-1, w)
        before = cv2.cvtColor(crop, cv2.COLOR_YUV2BGR_I420)
        after = before.copy()
        paint(after, x0, y0)
        changed = (after != before).any(axis=2)
        if not changed.any():
            return
        new = _split_i420(cv2.cvtColor(after, cv2.COLOR_BGR2YUV_I420), h, w)
        chroma = changed.reshape(h // 2, 2, w // 2, 2).any(axis=(1, 3))
        for view, plane, mask in zip(views, new, (changed, chroma, chroma), strict=True):
            view[mask] = plane[mask]

    def frame(self) -> av.VideoFrame:
        return av.VideoFrame.from_ndarray(self.data, format="yuv420p")


def _split_i420(data: np.ndarray, height: int, width: int) -> list[np.ndarray]:
    """Y, U, V plane views of a contiguous I420 buffer."""
    flat = data.reshape(-1)
    n = height * width
    return [
        flat[:n].reshape(height, width),
        flat[n : n + n // 4].reshape(height // 2, width // 2),
        flat[n + n // 4 :].reshape(height // 2, width // 2),
    ]


class _VideoOut:
    """Draws the overlay on source frames and encodes them, timestamps shifted to start at 0."""

    def __init__(
        self,
        dst: av.container.OutputContainer,
        vin: av.VideoStream,
        rate: Fraction,
        t0: float,
        result: Result,
    ) -> None:
        codec = "libx264" if "libx264" in av.codec.codecs_available else "mpeg4"
        # The picture as `media` shows it (upright, square pixels), the boxes' coordinates.
        width, height = result.width, result.height
        self.stream = dst.add_stream(
            codec, rate=rate, width=width + width % 2, height=height + height % 2
        )
        self.stream.pix_fmt = "yuv420p"
        time_base = vin.time_base
        if codec == "mpeg4" and time_base.denominator > 65535:  # the MPEG-4 Part 2 limit
            time_base = Fraction(1, 1000)
        self.stream.codec_context.time_base = time_base
        if codec == "libx264":
            self.stream.codec_context.options = {"preset": "veryfast", "crf": "20"}
        else:
            self.stream.codec_context.bit_rate = int(width * height * float(rate) * 0.2)
        self.time_base = time_base
        self.t0 = t0
        self.threshold = result.threshold
        self.overlay = _Overlay(result.tracks)
        self.pixel_aspect = media.pixel_aspect(vin)
        side = min(width, height)
        self.thickness = max(2, round(side / 240))
        self.font_scale = max(0.4, side / 800)
        self.text_thickness = max(1, round(side / 480))
        self.count = 0
        self.last_pts = -1

    def write(self, t: float, frame: av.VideoFrame) -> None:
        k = round((t - self.t0) * MODEL_FPS)
        image = _I420(frame, self.pixel_aspect)
        for track_id, box, prob in self.overlay.at(k):
            self._draw(image, track_id, box, prob)
        out = image.frame()
        # The first frame is pulled back to 0 when `start` falls between two source frames.
        pts = 0 if self.count == 0 else round((t - self.t0) / self.time_base)
        out.pts = max(pts, self.last_pts + 1)
        out.time_base = self.time_base
        self.last_pts = out.pts
        self.stream.container.mux(self.stream.encode(out))
        self.count += 1

    def flush(self) -> None:
        self.stream.container.mux(self.stream.encode(None))

    def _draw(self, image: _I420, track_id: int, box: np.ndarray, prob: float) -> None:
        speaking = prob >= self.threshold
        color, ink = (GREEN, (0, 0, 0)) if speaking else (RED, (255, 255, 255))
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        text = f"{track_id}: {prob:.2f}"
        half = self.thickness // 2
        (tw, th), base = cv2.getTextSize(text, FONT, self.font_scale, self.text_thickness)
        top = y1 - half - th - base
        if top < 0:  # no room above the box: label inside its top edge
            top = y1 + half
        left = max(x1 - half, 0)
        pad = self.thickness + 2  # line caps and antialiasing reach past the nominal corners

        def paint(img: np.ndarray, x0: int, y0: int) -> None:
            cv2.rectangle(img, (x1 - x0, y1 - y0), (x2 - x0, y2 - y0), color, self.thickness)
            cv2.rectangle(
                img, (left - x0, top - y0), (left + tw - x0, top + th + base - y0), color, -1
            )
            cv2.putText(
                img,
                text,
                (left - x0, top + th - y0),
                FONT,
                self.font_scale,
                ink,
                self.text_thickness,
                cv2.LINE_AA,
            )

        image.draw(
            min(x1, left) - pad,
            min(y1, top) - pad,
            max(x2, left + tw) + pad,
            max(y2, top + th + base) + pad,
            paint,
        )


class _AudioOut:
    """Source audio over [t0, t1), shifted by t0: packets copied where MP4 takes the codec,
    otherwise decoded and encoded to AAC. Packets straddling t0 keep a negative timestamp,
    which the MP4 muxer turns into an edit list."""

    def __init__(
        self, dst: av.container.OutputContainer, ain: av.AudioStream, t0: float, t1: float
    ) -> None:
        self.stream = ain
        self.t0, self.t1 = t0, t1
        self.copy = ain.codec_context.name in MP4_AUDIO
        if self.copy:
            self.out = dst.add_stream_from_template(ain)
            return
        rate = ain.rate if ain.rate in AAC_RATES else 48000
        # Named layouts only: the encoder rejects unordered ones such as "2 channels".
        layout = "mono" if ain.layout.nb_channels == 1 else "stereo"
        self.out = dst.add_stream("aac", rate=rate, layout=layout)
        self.out.codec_context.time_base = Fraction(1, rate)
        self.resampler = av.AudioResampler(
            format="fltp", layout=layout, rate=rate, frame_size=AAC_FRAME
        )
        self.rate = rate

    def add(self, packet: av.Packet) -> bool:
        """Take one source packet; True once the packets are past t1."""
        if packet.pts is None:
            return False
        if self.copy:
            tb = packet.time_base
            start = float(packet.pts * tb)
            if start >= self.t1:
                return True
            if start + float((packet.duration or 0) * tb) > self.t0:
                shift = round(self.t0 / tb)
                packet.pts -= shift
                if packet.dts is not None:
                    packet.dts -= shift
                packet.stream = self.out
                self.out.container.mux(packet)
            return False
        done = False
        for frame in packet.decode():
            done = done or (frame.time is not None and frame.time >= self.t1)
            self._encode(self.resampler.resample(frame))
        return done

    def flush(self) -> None:
        if not self.copy:
            self._encode(self.resampler.resample(None))
            self.out.container.mux(self.out.encode(None))

    def _encode(self, frames: list[av.AudioFrame]) -> None:
        shift = round(self.t0 * self.rate)
        for frame in frames:
            if frame.pts is None:
                continue
            start = frame.pts / self.rate
            if start < self.t1 and start + frame.samples / self.rate > self.t0:
                frame.pts -= shift
                self.out.container.mux(self.out.encode(frame))
