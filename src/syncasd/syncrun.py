"""Audio-visual sync of whole videos: `syncasd.sync(path)`, `SyncAnalyzer`, and re-syncing.

The three parts it joins, in order: `pipeline.Detector` finds, tracks and crops the faces
(`score=False`: crops only); a sync backend (`offsets.ICSyncOffsets` or `offsets.ASDOffsets`)
turns each track into its (2K+1, T) offset × time probability matrix; `sync.analyze_track`
reads offset, confidence, probability at offset, off-screen ratio and the verdict off it.
Kept apart from `pipeline.py` (one job: who speaks when) and `syncmap.py` (numpy on one
matrix, no models, no media).

`shift_audio` writes a copy of a video with its audio moved by whole samples (the video
packets copied, not re-encoded); `--fix` uses it with the measured offset, the tests use it to
make clips with a known offset.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from . import media
from .atomic import atomic_path
from .audio import speech_frames, track_speech
from .defaults import DEFAULT_SYNC_MODEL
from .errors import InputError, MediaError
from .models import get_spec
from .offsets import DEFAULT_MAX_OFFSET, offset_backend
from .pipeline import Detector, no_track_reason
from .syncmap import (
    DEFAULTS,
    SyncParams,
    TrackSync,
    VideoSync,
    analyze_track,
    offset_at_start,
)
from .timebase import MODEL_FPS

log = logging.getLogger("syncasd")


@dataclass
class SyncResult(VideoSync):
    """`VideoSync` plus what it was computed from: per track its matrix and frame span.

    `matrices[i]` is track i's (2K+1, T) sync probabilities (row k+K: audio k frames later);
    `spans[i]` its first and last model frame (25 fps, frame 0 at `start` s of the source).
    """

    matrices: list[np.ndarray] = field(default_factory=list, repr=False)
    spans: list[tuple[int, int]] = field(default_factory=list)
    start: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    audio_stream: int | None = None  # the audio track heard, counting audio tracks from 0
    audio_streams: int = 1  # the file's audio tracks

    @property
    def main(self) -> TrackSync | None:
        """The longest track (the first of equally long ones); None without faces."""
        return main_track(self)

    def to_dict(self) -> dict:
        """The JSON line's object plus, per track, its frame span, the mean probability of every
        offset (-K..K), the speaking-in-sync segments (model frames, [start, stop)), the offset
        of each stretch of about 10 s (frames, to a fraction) and the drift (ms per minute)."""
        tracks = []
        for t, (first, last) in zip(self.tracks, self.spans, strict=True):
            tracks.append(
                {
                    **t.to_dict(),
                    "first_frame": first,
                    "last_frame": last,
                    "mean_curve": [round(float(v), 4) for v in t.mean_curve],
                    "segments": [[first + a, first + b] for a, b in t.segments],
                    "offsets_over_time": [
                        {
                            "first_frame": first + o.first,
                            "last_frame": first + o.last,
                            "offset_frames": round(o.offset, 2),
                        }
                        for o in t.offsets_over_time
                    ],
                    "drift_ms_per_min": None
                    if t.drift_ms_per_min is None
                    else round(t.drift_ms_per_min, 1),
                }
            )
        return {
            "video": str(self.video),
            "start": self.start,
            "audio_stream": self.audio_stream,
            "tracks": tracks,
        }


def main_track(video: VideoSync) -> TrackSync | None:
    """The longest track of a video (the first of equally long ones); None without tracks."""
    if not video.tracks:
        return None
    return max(video.tracks, key=lambda t: len(t.frame_probs))  # max keeps the first of ties


def verdict(track: TrackSync, params: SyncParams = DEFAULTS) -> str:
    """The verdict in words: "in sync", or "not in sync (...)" with every reason (how late or
    early the audio is, a weak sync: the voice may not be this face's, off-screen speech)."""
    if track.in_sync:
        return "in sync"
    reasons = []
    if abs(track.offset_frames) > params.max_abs_offset:
        side = "late" if track.offset_frames > 0 else "early"
        reasons.append(f"audio {abs(track.offset_ms):.0f} ms {side}")
    if track.prob_at_offset < params.min_prob_at_offset:
        reasons.append("weak sync: the voice may not be this face's")
    if track.offscreen_ratio > params.max_offscreen_ratio:
        reasons.append("off-screen speech")
    return f"not in sync ({'; '.join(reasons)})"


# A drift that moves the offset by a frame or more over the track is worth a word.
DRIFT_NOTE_MS = 1000.0 / MODEL_FPS


def drift_words(track: TrackSync, fps: float = MODEL_FPS) -> str | None:
    """The drift in words when it moves the offset by `DRIFT_NOTE_MS` or more over the stretches
    measured (what a constant shift such as `--fix` leaves), else None."""
    stretches, drift = track.offsets_over_time, track.drift_ms_per_min
    if drift is None:
        return None
    span_min = (stretches[-1].first + stretches[-1].last) - (stretches[0].first + stretches[0].last)
    span_min /= 2 * fps * 60
    if abs(drift) * span_min < DRIFT_NOTE_MS:
        return None
    side = "later" if drift > 0 else "earlier"
    path = " → ".join(f"{o.offset:+.1f}" for o in stretches)
    return (
        f"drift: the audio gets {abs(drift):.0f} ms per minute {side} (offsets {path} frames, "
        f"{len(stretches)} stretches); --fix alone shifts by a constant, --fix-drift also removes "
        "this"
    )


def check_output(src: str | Path, dst: str | Path) -> None:
    """InputError if `dst` is the input video itself (a re-synced copy must not replace it)."""
    if _same_file(Path(src), Path(dst)):
        raise InputError(f"{dst}: is the input video; write the re-synced copy to another path")


class SyncAnalyzer:
    """A configured sync analysis; call it on one video path after another.

    Loads the face detector and the model once. `SyncAnalyzer(**options)(path) -> SyncResult`.
    `max_offset`: K, the offsets searched are -K..K frames (40 ms each). `params`: the
    thresholds of `sync.analyze_track`. `audio_lag_ms`: the weights' clock
    (`offsets.offset_backend`; None: the registry's). `model`: a sync model (sync-pair, the default;
    light-syncnet, ic-syncnet, syncnet-v2) or an ASD model with separable encoders
    (sync-light-asd, light-asd, lr-asd), run through torch.
    Every other option is a `DetectOptions` field (weights, device, start, duration,
    detect_every, min_track, allow_silent, threads, ...); the Detector only finds, tracks and
    crops faces, as the backend reads them.
    """

    def __init__(
        self,
        max_offset: int = DEFAULT_MAX_OFFSET,
        params: SyncParams = DEFAULTS,
        shift_batch: int = 32,
        face_detector: object | None = None,
        audio_lag_ms: float | None = None,
        **options: object,
    ) -> None:
        if options.get("backend", "torch") not in ("torch", "auto"):
            raise InputError("sync runs the model through torch; leave --backend at auto or torch")
        if options.get("scoring", "chunk") != "chunk":
            raise InputError("sync scores in detect's chunk windows; --scoring demo is not used")
        options = {"model": DEFAULT_SYNC_MODEL, **options}
        options.update(backend="torch", scoring="chunk", score=False)
        self.params = params
        # The Detector crops faces as the backend reads them.
        options["crop"] = get_spec(str(options["model"])).crop
        self.detector = Detector(face_detector, **options)
        o = self.detector.options
        self.backend = offset_backend(
            o.model,
            o.weights,
            max_offset,
            o.device,
            self.detector.window,
            shift_batch,
            audio_lag_ms,
        )

    @property
    def max_offset(self) -> int:
        return self.backend.max_offset

    def __call__(self, path: str | Path) -> SyncResult:
        """Sync analysis of every face track of one video; MediaError for unusable input."""
        clock = time.perf_counter()
        detection = self.detector(path)
        t_faces = time.perf_counter() - clock
        o = self.detector.options
        result = SyncResult(
            video=str(path),
            tracks=[],
            start=o.start,
            audio_stream=detection.metadata["source"]["audio_stream"],
            audio_streams=detection.metadata["source"]["audio_streams"],
        )
        if not detection.tracks:
            reason = no_track_reason(detection)
            warnings.warn(f"{path}: {reason}; no track to analyse", stacklevel=2)
        else:
            audio, lead = self._audio(path)
            features = self.backend.features(audio)
            # Off-screen speech is speech the face does not explain: pauses, which our
            # backends score low, are not counted (`syncmap.offscreen_ratio`).
            speech = speech_frames(audio)
            for track in detection.tracks:
                first = track.start + lead
                probs = self.backend.matrix(track.crops, features, first)
                track.crops = None  # free them as we go
                heard = track_speech(speech, first, probs.shape[1])
                result.tracks.append(
                    analyze_track(probs, track.id, speech=heard, params=self.params)
                )
                result.matrices.append(probs)
                result.spans.append((track.start, track.end))
        total = time.perf_counter() - clock
        result.timings = {"faces": round(t_faces, 3), "total": round(total, 3)}
        log.info("%s: %d tracks; seconds %s", path, len(result.tracks), result.timings)
        return result

    def _audio(self, path: str | Path) -> tuple[np.ndarray, int]:
        """The analysed interval's audio with up to K + 5 frames of the file on each side of
        it (so that shifted audio is real audio where the file has it: IC-SyncNet's 0.4 s
        window reaches 4.5 frames past its centre, an MFCC window one frame), and how many
        frames of it come before model frame 0."""
        o = self.detector.options
        k = self.backend.max_offset + 5
        lead = min(k, int(np.floor(o.start * MODEL_FPS + 1e-6)))
        begin = o.start - lead / MODEL_FPS
        length = None if o.duration is None else o.duration + (lead + k) / MODEL_FPS
        origin = media.probe(path).origin  # the video's: the same whichever track is heard
        return media.read_audio(path, begin, length, origin, o.audio_stream), lead


def sync(path: str | Path, **options: object) -> SyncResult:
    """Audio-visual offset and sync quality of every face track of one video.

    `syncasd.sync("talk.mp4")`; options as `SyncAnalyzer`'s. To run many videos, build a
    `SyncAnalyzer` once.
    """
    return SyncAnalyzer(**options)(path)


# ---------------------------------------------------------------------------------------------
# Moving the audio


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    return a.exists() and b.exists() and os.path.samefile(a, b)


def shift_audio(
    src: str | Path,
    dst: str | Path,
    frames: float,
    *,
    drift_ms_per_min: float = 0.0,
    codec: str = "aac",
    bit_rate: int | None = None,
    audio_stream: int | None = None,
) -> Path:
    """Copy `src` to `dst` with the audio `frames` model frames (40 ms each) later.

    frames > 0 delays the audio: silence is inserted at its start and as much is cut at its
    end; frames < 0 advances it: its start is cut and silence appended. The duration, sample
    rate and channels stay; the shift is rounded to whole samples at the audio's own rate.
    `drift_ms_per_min` also makes the audio that much later every minute from its start
    (earlier where negative): it is played 1 + drift/60000 times slower, resampled, and its
    length changes by as much; the shift applies after it.
    The first video stream is copied packet for packet (not re-encoded); the audio track
    (`audio_stream`, counting audio tracks from 0; by default the one players play,
    `media.pick_audio_stream`) is re-encoded with `codec` (AAC by default; pcm_s16le in
    .mov/.mkv is lossless); other streams are dropped. Written atomically; `dst` must not be
    `src`. To remove a measured offset k (`TrackSync.offset_frames`), shift by -k
    (`fix_offset`).
    """
    src, dst = Path(src), Path(dst)
    check_output(src, dst)
    info = media.probe(src, audio_stream)  # MediaError for missing, empty, unreadable files
    if not dst.parent.is_dir():
        raise InputError(f"{dst}: the folder {dst.parent} does not exist")
    if not info.has_audio:
        raise MediaError(f"{src}: has no audio track to move")
    try:
        with av.open(str(src)) as inp, atomic_path(dst) as tmp:
            a_in = media.pick_audio_stream(inp, src, audio_stream)
            _remux_shifted(inp, a_in, tmp, dst, frames, drift_ms_per_min, codec, bit_rate)
    except av.FFmpegError as e:
        raise MediaError(
            f"{src} → {dst}: cannot re-sync ({e.strerror or e}); try another output container, "
            "e.g. .mkv"
        ) from None
    except OSError as e:
        raise InputError(f"{dst}: cannot write ({e.strerror or e})") from None
    return dst


def fix_offset(
    src: str | Path,
    dst: str | Path,
    offset_frames: float,
    drift_ms_per_min: float = 0.0,
    **kwargs: object,
) -> Path:
    """Copy `src` to `dst` with a measured offset removed: the audio moved by -offset_frames;
    with a drift, `offset_frames` is the offset at the file's start and the drift is removed
    too (`shift_audio`)."""
    return shift_audio(src, dst, -offset_frames, drift_ms_per_min=-drift_ms_per_min, **kwargs)


def drift_fix(result: SyncResult, track: TrackSync) -> tuple[float, float] | None:
    """(offset at the file's start in frames, drift in ms per minute) of `track`'s offset line,
    for `fix_offset`; None where its drift was not measured (fewer than three stretches)."""
    if track.drift_ms_per_min is None:
        return None
    # By identity: == between TrackSyncs compares their fields, arrays included.
    first = next(span[0] for t, span in zip(result.tracks, result.spans, strict=True) if t is track)
    at_track_start = offset_at_start(track.offsets_over_time, track.drift_ms_per_min)
    frames_before = first + result.start * MODEL_FPS  # file frame of the track's frame 0
    return at_track_start - track.drift_ms_per_min / 60_000.0 * frames_before, (
        track.drift_ms_per_min
    )


def _remux_shifted(
    inp: av.container.InputContainer,
    a_in: av.AudioStream,
    tmp: Path,
    dst: Path,
    frames: float,
    drift_ms_per_min: float,
    codec: str,
    bit_rate: int | None,
) -> None:
    v_in = inp.streams.video[0] if inp.streams.video else None
    rate = a_in.codec_context.sample_rate
    layout = a_in.codec_context.layout.name
    channels = a_in.codec_context.layout.nb_channels
    delay = int(round(frames * rate / MODEL_FPS))  # samples; > 0: audio later
    try:
        out = av.open(str(tmp), "w")
    except ValueError:  # PyAV: no container format for this suffix
        raise InputError(f"{dst}: no video format for its suffix; use .mp4, .mov or .mkv") from None
    with out:
        v_out = out.add_stream_from_template(v_in) if v_in is not None else None
        a_out = out.add_stream(codec, rate=rate, layout=layout)
        if bit_rate:
            a_out.bit_rate = bit_rate
        # Samples pass through as planar float; the encoder converts them to its own format and
        # cuts them into its frame size.
        to_float = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        # A drift: the decoded samples are declared at another rate, which the resampler
        # brings back to `rate`, so that they play that much slower (later) or faster.
        declared = round(rate / (1 + drift_ms_per_min / 60_000.0)) if drift_ms_per_min else rate

        held = np.zeros((channels, max(delay, 0)), np.float32)  # silence first, if delayed
        drop = max(-delay, 0)  # samples still to cut from the start, if advanced
        pts: int | None = None  # next output sample's pts (1/rate), from the first input frame

        def declare(frame: av.AudioFrame) -> av.AudioFrame:
            """The decoded frame as the resampler takes it; the first one sets `pts`."""
            nonlocal pts
            if pts is None:
                pts = int(round((frame.time or 0.0) * rate))
            if declared != rate:  # a timeline of its own: the samples, counted at `declared`
                frame.sample_rate, frame.pts = declared, None
            return frame

        def emit(samples: np.ndarray) -> None:
            nonlocal pts
            if samples.shape[1] == 0:
                return
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples, np.float32), format="fltp", layout=layout
            )
            frame.sample_rate = rate
            frame.time_base = Fraction(1, rate)
            frame.pts = pts
            pts += samples.shape[1]
            for packet in a_out.encode(frame):
                out.mux(packet)

        def take(decoded: list[av.AudioFrame]) -> None:
            nonlocal held, drop
            for frame in decoded:
                x = frame.to_ndarray().reshape(channels, -1)
                cut = min(drop, x.shape[1])
                drop -= cut
                held = np.concatenate([held, x[:, cut:]], axis=1)
                # Delayed audio keeps its last `delay` samples back: they are cut at the end.
                ready = held.shape[1] - max(delay, 0)
                emit(held[:, :ready])
                held = held[:, ready:]

        streams = [s for s in (v_in, a_in) if s is not None]
        for packet in inp.demux(streams):
            if packet.stream is a_in:  # the last, empty one flushes the decoder
                take([f for d in packet.decode() for f in to_float.resample(declare(d))])
            elif packet.size:  # not the demuxer's empty flush packet
                packet.stream = v_out
                out.mux(packet)
        take(to_float.resample(None))
        if pts is not None and delay < 0:
            emit(np.zeros((channels, -delay), np.float32))
        for packet in a_out.encode(None):
            out.mux(packet)


__all__ = [
    "SyncAnalyzer",
    "SyncResult",
    "check_output",
    "drift_fix",
    "fix_offset",
    "main_track",
    "shift_audio",
    "sync",
    "verdict",
]
