"""Compose multi-speaker test scenes from single-speaker clips with PyAV (streaming).

Outputs are MP4 files with H.264 video (``libx264``, falling back to ``mpeg4``) in yuv420p and
AAC audio at 16 kHz mono. Every output is encoded into a temporary file next to the target and
moved into place only on success.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..atomic import atomic_path
from ..timebase import SAMPLE_RATE

Rect = tuple[float, float, float, float]


def _video_codec() -> str:
    return "libx264" if "libx264" in av.codec.codecs_available else "mpeg4"


class _AudioSink:
    """Encodes mono int16 chunks into an output audio stream, tracking the sample count."""

    def __init__(self, container: av.container.OutputContainer, codec: str, rate: int) -> None:
        self.container = container
        self.rate = rate
        self.stream = container.add_stream(codec, rate=rate, layout="mono")
        self.written = 0

    def write(self, samples: np.ndarray) -> None:
        if len(samples) == 0:
            return
        data = np.ascontiguousarray(samples, dtype=np.int16)[None]
        frame = av.AudioFrame.from_ndarray(data, format="s16", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self.written
        frame.time_base = Fraction(1, self.rate)
        self.written += data.shape[1]
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        self.container.mux(self.stream.encode(None))


class _Clip:
    """A clip that can be read as endless (looping) video frames and audio samples.

    One loop lasts exactly ``n_frames / fps`` seconds in both streams (audio is trimmed or
    zero-padded to that length) so that looping never drifts audio against video.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        with av.open(self.path) as c:
            v = c.streams.video[0]
            self.fps = float(v.average_rate or 25)
            self.width, self.height = v.codec_context.width, v.codec_context.height
            # The header count can be missing (0) for some containers; count packets then.
            self.n_frames = v.frames or sum(1 for p in c.demux(v) if p.size)
            self.has_audio = bool(c.streams.audio)

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps

    def frames(self, width: int, height: int) -> Iterator[np.ndarray]:
        while True:
            n = 0
            last = None
            with av.open(self.path) as c:
                stream = c.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in c.decode(stream):
                    if n == self.n_frames:
                        break
                    last = frame.to_ndarray(width=width, height=height, format="rgb24")
                    n += 1
                    yield last
            if last is None:
                raise ValueError(f"no decodable video frames in {self.path}")
            for _ in range(self.n_frames - n):
                yield last

    def audio(self, rate: int) -> Iterator[np.ndarray]:
        per_loop = round(self.duration * rate)
        while True:
            n = 0
            if self.has_audio:
                with av.open(self.path) as c:
                    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
                    for frame in c.decode(c.streams.audio[0]):
                        for out in resampler.resample(frame):
                            chunk = out.to_ndarray()[0][: per_loop - n]
                            n += len(chunk)
                            yield chunk
                        if n >= per_loop:
                            break
            if n < per_loop:
                yield np.zeros(per_loop - n, np.int16)


class _Buffered:
    """Reads exact-length chunks from an iterator of variable-length int16 arrays."""

    def __init__(self, chunks: Iterator[np.ndarray]) -> None:
        self.chunks = chunks
        self.buf = np.zeros(0, np.int16)

    def read(self, n: int) -> np.ndarray:
        parts, have = [self.buf], len(self.buf)
        while have < n:
            parts.append(next(self.chunks))
            have += len(parts[-1])
        data = np.concatenate(parts)
        self.buf = data[n:]
        return data[:n]


def _layout(clips: Sequence[_Clip], size: tuple[int, int], face_height: float) -> list[Rect]:
    width, height = size
    col = width / len(clips)
    rects = []
    for i, clip in enumerate(clips):
        scale = min(face_height * height / clip.height, col / clip.width)
        tw, th = round(clip.width * scale), round(clip.height * scale)
        x1, y1 = round(i * col + (col - tw) / 2), round((height - th) / 2)
        rects.append((float(x1), float(y1), float(x1 + tw), float(y1 + th)))
    return rects


def compose_side_by_side(
    clips: Sequence[str | Path],
    out_path: str | Path,
    *,
    size: tuple[int, int] = (1280, 720),
    fps: float = 25.0,
    duration: float | None = None,
    audio: str | int | Sequence[tuple[float, int]] | None = 0,
    face_height: float = 0.45,
    background: int = 40,
    audio_codec: str = "aac",
    crf: int = 23,
    preset: str = "medium",
    mix_gains: Sequence[float] | None = None,
) -> list[Rect]:
    """Place 1-4 clips left to right on a gray canvas and encode the result to ``out_path``.

    Each clip gets a column of equal width; its frames are scaled (keeping aspect) to
    ``face_height`` times the output height (or narrower if the column demands) and centred in
    the column. Clips shorter than ``duration`` loop from their start.

    Args:
        clips: 1 to 4 input video files.
        out_path: Output MP4 path (written atomically).
        size: Output (width, height) in pixels.
        fps: Output frame rate; sources are assumed constant-rate and frames are repeated or
            dropped to convert.
        duration: Output length in seconds; ``None`` means the length of the shortest clip.
        audio: Index of the clip whose audio is used, ``"mix"`` for the sum of all clips
            (clipped to int16), ``None`` for digital silence, or turns of a conversation:
            ``(start_seconds, clip_index)`` pairs, the first at 0, each clip heard from its
            start until the next (every clip's audio runs on under the others' turns, so a
            voice stays in sync with its lips).
        face_height: Tile height as a fraction of the output height.
        background: Gray level (0-255) of the canvas.
        audio_codec: FFmpeg encoder name for the 16 kHz mono audio track.
        crf: Constant rate factor for libx264 (ignored for the mpeg4 fallback).
        preset: libx264 speed preset; "veryfast" needs about 30% less CPU than "medium".
        mix_gains: With ``audio="mix"``, a linear gain per clip applied before summing
            (default: 1 each), e.g. to make every voice as loud as the others.

    Returns:
        One tile rectangle ``(x1, y1, x2, y2)`` in output pixels per clip.
    """
    if not 1 <= len(clips) <= 4:
        raise ValueError(f"expected 1 to 4 clips, got {len(clips)}")
    if isinstance(audio, int) and not 0 <= audio < len(clips):
        raise ValueError(f"audio index {audio} out of range for {len(clips)} clips")
    if isinstance(audio, str) and audio != "mix":
        raise ValueError(f"audio must be a clip index, 'mix' or None, got {audio!r}")
    if mix_gains is not None and (audio != "mix" or len(mix_gains) != len(clips)):
        raise ValueError("mix_gains needs audio='mix' and one gain per clip")
    gains = list(mix_gains) if mix_gains is not None else [1.0] * len(clips)
    turns = None
    if audio is not None and not isinstance(audio, (int, str)):
        turns = _turns(audio, len(clips))
    if size[0] % 2 or size[1] % 2:
        raise ValueError(f"yuv420p needs an even width and height, got {size}")
    sources = [_Clip(c) for c in clips]
    rects = _layout(sources, size, face_height)
    if duration is None:
        duration = min(s.duration for s in sources)
    n_out = round(duration * fps)
    n_samples = round(duration * SAMPLE_RATE)
    rate = Fraction(fps).limit_denominator(1001)

    with contextlib.ExitStack() as stack:
        boxes = [tuple(int(v) for v in r) for r in rects]
        videos = [
            stack.enter_context(contextlib.closing(s.frames(x2 - x1, y2 - y1)))
            for s, (x1, y1, x2, y2) in zip(sources, boxes, strict=True)
        ]
        if turns is not None or audio == "mix":
            audio_ids = range(len(sources))
        else:
            audio_ids = [] if audio is None else [audio]
        audios = [
            _Buffered(stack.enter_context(contextlib.closing(sources[i].audio(SAMPLE_RATE))))
            for i in audio_ids
        ]
        tmp = stack.enter_context(atomic_path(out_path))
        out = stack.enter_context(av.open(str(tmp), "w", format="mp4"))

        vstream = out.add_stream(_video_codec(), rate=rate)
        vstream.width, vstream.height = size
        vstream.pix_fmt = "yuv420p"
        if vstream.codec_context.name == "libx264":
            vstream.options = {"crf": str(crf), "preset": preset}
        else:
            vstream.bit_rate = 4_000_000
        sink = _AudioSink(out, audio_codec, SAMPLE_RATE)

        canvas = np.full((size[1], size[0], 3), background, np.uint8)
        consumed = [0] * len(sources)
        for k in range(n_out):
            for i, src in enumerate(sources):
                target = int(k * src.fps / fps + 1e-6)  # source frame shown at output time k/fps
                if consumed[i] <= target:
                    for _ in range(target + 1 - consumed[i]):
                        tile = next(videos[i])
                    consumed[i] = target + 1
                    x1, y1, x2, y2 = boxes[i]
                    canvas[y1:y2, x1:x2] = tile
            frame = av.VideoFrame.from_ndarray(canvas, format="rgb24")
            frame.pts = k
            frame.time_base = 1 / rate
            out.mux(vstream.encode(frame))

            last = k == n_out - 1
            upto = n_samples if last else min(n_samples, round((k + 1) * SAMPLE_RATE / fps))
            n = upto - sink.written
            if turns is not None:
                voices = np.stack([a.read(n) for a in audios])
                at = np.arange(sink.written, upto)
                speaker = turns[1][np.searchsorted(turns[0], at, side="right") - 1]
                sink.write(voices[speaker, np.arange(n)])
            elif audios:
                mixed = sum(
                    gains[i] * a.read(n).astype(np.float64)
                    for i, a in zip(audio_ids, audios, strict=True)
                )
                sink.write(np.clip(np.rint(mixed), -32768, 32767).astype(np.int16))
            else:
                sink.write(np.zeros(n, np.int16))

        out.mux(vstream.encode(None))
        sink.close()
    return rects


def _turns(turns: Sequence[tuple[float, int]], n_clips: int) -> tuple[np.ndarray, np.ndarray]:
    """Conversation turns → (start sample of each turn, its clip index), checked."""
    pairs = [(float(t), int(i)) for t, i in turns]
    if not pairs or pairs[0][0] != 0:
        raise ValueError("the first turn must start at 0 s")
    starts = [t for t, _ in pairs]
    if any(b <= a for a, b in zip(starts[:-1], starts[1:], strict=True)):
        raise ValueError(f"turn starts must increase, got {starts}")
    if any(not 0 <= i < n_clips for _, i in pairs):
        raise ValueError(f"a turn names a clip outside 0…{n_clips - 1}: {pairs}")
    return (
        np.array([round(t * SAMPLE_RATE) for t in starts], np.int64),
        np.array([i for _, i in pairs], np.int64),
    )


def _video_duration(path: str) -> float:
    with av.open(path) as c:
        v = c.streams.video[0]
        end = max((p.pts + p.duration for p in c.demux(v) if p.pts is not None), default=0)
        return float(end * v.time_base)


def replace_audio(
    video_path: str | Path,
    out_path: str | Path,
    *,
    audio: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
) -> None:
    """Copy the video stream of ``video_path`` (packet copy) and attach new mono audio.

    Args:
        video_path: Input file; only its first video stream is kept.
        out_path: Output MP4 path (written atomically).
        audio: Mono int16 samples at ``sample_rate``, written as AAC whatever their length;
            ``None`` writes digital silence of the video's duration.
        sample_rate: Sample rate of ``audio`` and of the output audio track.
    """
    video_path = str(video_path)
    if audio is None:
        audio = np.zeros(round(_video_duration(video_path) * sample_rate), np.int16)
    audio = np.asarray(audio)
    if audio.ndim != 1 or audio.dtype != np.int16:
        raise ValueError(f"audio must be mono int16, got {audio.dtype} {audio.shape}")
    with (
        av.open(video_path) as src,
        atomic_path(out_path) as tmp,
        av.open(str(tmp), "w", format="mp4") as out,
    ):
        vin = src.streams.video[0]
        vout = out.add_stream_from_template(vin)
        sink = _AudioSink(out, "aac", sample_rate)
        for packet in src.demux(vin):
            if packet.dts is None:  # demuxer flush packet
                continue
            # Interleave audio up to this packet's time to keep the muxer's queue small.
            upto = min(len(audio), round(float(packet.dts * vin.time_base) * sample_rate))
            sink.write(audio[sink.written : max(upto, sink.written)])
            packet.stream = vout
            out.mux(packet)
        sink.write(audio[sink.written :])
        sink.close()


def silence_audio(video_path: str | Path, out_path: str | Path) -> None:
    """Copy ``video_path`` to ``out_path`` with its audio replaced by silence of equal length."""
    replace_audio(video_path, out_path, audio=None)
