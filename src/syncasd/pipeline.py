"""Orchestration, the only place that knows the order of the stages:

video → audio + MFCC → frames on the 25 fps timeline → shot cuts → faces → tracks →
smoothed crops → streaming scores → Result.

Everything streams: frames live in a short ring buffer until every track has cropped them, and
crops live in the scorers only for the window being scored, so memory does not grow with the
length of the video.
"""

from __future__ import annotations

import csv
import ctypes
import logging
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from tqdm import tqdm

from . import __version__, media
from .audio import asd_features, is_silent, reads_mel, speech_frames, track_speech
from .defaults import DEFAULT_ALIGN_MODEL, DEFAULT_MODEL, DEFAULT_SYNC_MODEL
from .errors import InputError, MediaError
from .faces.crop import CROPS
from .faces.detect import FaceDetector, RetinaFaceDetector, ShotZoom
from .faces.track import FaceTrack, IoUTracker, ShotDetector
from .models import get_spec, load_model
from .models.onnx import to_ort
from .models.zoo import cache_dir
from .offsets import offset_backend, shifted
from .results import Result, Track, speaking_turns
from .scoring import ChunkScorer, DemoScorer
from .timebase import MODEL_FPS, SAMPLES_PER_FRAME

if TYPE_CHECKING:
    from .syncmap import TrackSync

log = logging.getLogger("syncasd")

SHOT_FRAME_WIDTH = 160  # shot-cut detection needs little detail
# `align` moves the soundtrack from this many frames off: the models count ±1 as in sync.
ALIGN_MIN_FRAMES = 2


def _keep_frame_buffers_off_the_heap() -> None:
    """Serve large allocations (decoded frames) with mmap so that freeing them returns memory.

    glibc raises its mmap threshold after the first large free, after which every decoded
    frame comes from the heap, which fragments: RSS then grows by megabytes a second on 720p
    video. A fixed threshold keeps memory flat in video length.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
        except (OSError, AttributeError):
            pass  # not glibc (e.g. musl): nothing to tune


@dataclass
class DetectOptions:
    """Every knob of `detect`, with the defaults the CLI shows."""

    model: str = DEFAULT_MODEL
    weights: str | None = None
    device: str = "cpu"
    backend: str = "auto"
    start: float = 0.0
    duration: float | None = None
    detect_every: int = 2
    detector_size: int = 640
    # Shots with faces too small for the detector_size copy (a probe per shot and every 4 s
    # finds them) are also detected at this size, for those faces (`faces.detect.ShotZoom`);
    # 0: never.
    zoom_size: int = 1280
    face_threshold: float = 0.9
    min_face: float = 0.0
    min_track: int = 10
    max_gap: int = 10
    iou: float = 0.5
    shot_threshold: float = 27.0
    scoring: str = "chunk"
    window: float = 6.0
    threshold: float = 0.5
    min_turn: float = 0.0
    merge_gap: float = 0.0
    faces_csv: str | None = None
    allow_silent: bool = False
    # The audio track to hear, counting audio tracks from 0 (a film's original voices and its
    # dubs); None: the one flagged default, as players choose, else the first.
    audio_stream: int | None = None
    keep_crops: bool = False  # attach each track's crops to it (evaluation)
    # Which crops: "asd" (gray 112×112, the ASD models' and IC-SyncNet's) or "syncnet"
    # (colour 224×224, SyncNet v2's; only with score=False).
    crop: str = "asd"
    # False: find, track and crop faces only, keeping the crops; no ASD model is loaded and
    # every probability is 0 (sync analysis scores the crops itself, at every offset).
    score: bool = True
    # Sync columns: each track's audio-visual offset and a per-frame in-sync probability from
    # a sync backend (`offsets.offset_backend`); require_sync gates speaking on it.
    sync: bool = False
    require_sync: bool = False  # the seeds' definition: lips out of sync = not speaking
    sync_model: str = DEFAULT_SYNC_MODEL
    sync_max_offset: int = 15
    # Move the whole soundtrack by the offset its confident tracks agree on before scoring
    # (`syncmap.video_offset`, on align_model's matrices); for videos known to be off, never
    # the default: a dubbed video would be "aligned" to a chance offset and its faces called
    # speaking, and a voice 125 ms off its lips is not the face speaking (the seeds).
    align: bool = False
    align_model: str = DEFAULT_ALIGN_MODEL
    batch: int = 4
    threads: int = 0
    progress: bool = False


class _KeepingScorer:
    """A scorer that also keeps every crop pushed into it (`keep_crops`)."""

    def __init__(self, scorer: ChunkScorer | DemoScorer) -> None:
        self.scorer = scorer
        self.crops: list[np.ndarray] = []

    @property
    def n(self) -> int:
        return self.scorer.n

    def push(self, crops: np.ndarray) -> None:
        self.crops.append(crops)
        self.scorer.push(crops)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        return self.scorer.finish()


class _CropsOnly:
    """Stands in for a scorer when `score` is off: keeps the crops, scores nothing."""

    def __init__(self) -> None:
        self.crops: list[np.ndarray] = []
        self.n = 0

    def push(self, crops: np.ndarray) -> None:
        self.crops.append(crops)
        self.n += len(crops)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(self.n, np.float32), np.zeros(self.n, np.float32)


@dataclass
class _LiveTrack:
    """A face track being cropped and scored while the video streams past."""

    track: FaceTrack
    scorer: ChunkScorer | DemoScorer
    next_crop: int  # model frame


class Detector:
    """A configured pipeline; call it on one video path after another.

    Loads the model and the face detector once. `Detector(**options)(path) -> Result`.
    """

    def __init__(self, face_detector: FaceDetector | None = None, **options: object) -> None:
        self.options = DetectOptions(**options)  # type: ignore[arg-type]
        self._short_tracks = 0  # of the video being analysed: faces seen too briefly, dropped
        self._zoomed_detections = 0  # of the video being analysed: detections at zoom_size
        o = self.options
        if o.detect_every < 1:
            raise InputError("--detect-every must be at least 1")
        if o.zoom_size and o.zoom_size <= o.detector_size:
            raise InputError(
                f"--zoom-size {o.zoom_size} must exceed --detector-size {o.detector_size} "
                "(or be 0 to never zoom)"
            )
        if o.scoring not in ("chunk", "demo"):
            raise InputError(f"unknown scoring {o.scoring!r}; choose chunk or demo")
        if o.scoring == "demo" and o.min_track < 3:
            raise InputError("--scoring demo needs --min-track of at least 3 frames")
        if o.backend not in ("auto", "torch", "ort"):
            raise InputError(f"unknown backend {o.backend!r}; choose auto, torch or ort")
        if o.device.startswith("cuda") and not torch.cuda.is_available():
            raise InputError(f"--device {o.device}: CUDA is not available on this machine")
        if o.crop not in CROPS:
            raise InputError(f"unknown crop {o.crop!r}; choose {' or '.join(CROPS)}")
        if o.score and o.crop != "asd":
            raise InputError("ASD models read gray 112×112 crops: crop must be asd to score")
        self._crop = CROPS[o.crop]
        if o.threads:
            torch.set_num_threads(o.threads)
        _keep_frame_buffers_off_the_heap()
        self.model = (
            load_model(o.model, weights=o.weights, device=o.device, kind="asd") if o.score else None
        )
        # ONNX Runtime is 2-4x faster than torch on CPU for these small conv nets.
        if o.score and (o.backend == "ort" or (o.backend == "auto" and o.device == "cpu")):
            if o.device != "cpu":
                raise InputError("--backend ort runs on the CPU; use --device cpu")
            self.model = to_ort(self.model, o.model, cache_dir(), threads=o.threads)
        # Sync backends by model name: --sync's and --align's, one where they are the same.
        self._sync_backends = {}
        for name in self._pass_models(vote=o.align):
            if get_spec(name).crop != o.crop:
                raise InputError(
                    f"{name} reads colour 224×224 face crops, the ASD model gray ones: "
                    "detect --sync takes ic-syncnet or an ASD model; run `syncasd sync` for it"
                )
            same = name == o.model  # the ASD model's own weights serve both
            self._sync_backends[name] = offset_backend(
                name, o.weights if same else None, o.sync_max_offset, o.device, self.window
            )
        self._pass: list[str] = []  # the sync backends the pass under way runs
        self._voting = False  # whether it collects votes for the soundtrack's offset
        self._sync_features: dict[str, object] = {}  # per backend, of the video being analysed
        self._speech: np.ndarray | None = None  # VAD mask of the video's frames
        self._sync_seconds = 0.0
        self._finish_seconds = 0.0
        # With align, per track: its analysis by align_model and its speech frames.
        self._votes: list[tuple[TrackSync, int]] = []
        self.face_detector = face_detector
        if self.face_detector is None and o.faces_csv is None:
            self.face_detector = RetinaFaceDetector(
                max_side=o.detector_size,
                threshold=o.face_threshold,
                min_size=o.min_face,
                threads=o.threads,
            )

    def __call__(self, path: str | Path) -> Result:
        clock = time.perf_counter()
        info, audio = self._soundtrack(path)
        read_seconds = time.perf_counter() - clock
        result = self._analyse(path, info, audio, vote=self.options.align)
        if self.options.align:
            result = self._align(path, info, audio, result)
        timings = result.metadata["timings_s"]
        timings["audio"] = round(timings["audio"] + read_seconds, 3)  # decoded once, both passes
        timings["total"] = round(time.perf_counter() - clock, 3)
        seconds = result.n_frames / MODEL_FPS
        result.metadata["real_time_factor"] = (
            round(seconds / timings["total"], 3) if timings["total"] > 0 else None
        )
        log.info(
            "%s: %d frames, %d tracks; stage seconds %s",
            path,
            result.n_frames,
            len(result.tracks),
            timings,
        )
        return result

    def _pass_models(self, vote: bool) -> list[str]:
        """The sync backends one pass runs: --sync's, and --align's where the pass votes."""
        o = self.options
        names = [o.sync_model] if o.sync or o.require_sync else []
        return list(dict.fromkeys(names + ([o.align_model] if vote else [])))

    def _soundtrack(self, path: str | Path) -> tuple[media.MediaInfo, np.ndarray]:
        """The video's properties and its audio over the analysed interval, refused where
        there is none to hear (no audio track; digital silence unless allow_silent)."""
        o = self.options
        info = media.probe(path, o.audio_stream)
        if not info.has_audio:
            raise MediaError(
                f"{path}: has no audio track; active speaker detection needs the soundtrack"
            )
        audio = media.read_audio(path, o.start, o.duration, info.origin, o.audio_stream)
        if is_silent(audio) and not o.allow_silent:
            raise MediaError(
                f"{path}: the audio track is silent (digital silence); nobody can be heard "
                "speaking. Pass --allow-silent to score it anyway."
            )
        return info, audio

    def _align(
        self, path: str | Path, info: media.MediaInfo, audio: np.ndarray, first: Result
    ) -> Result:
        """`align`: one offset for the soundtrack from the tracks that hear their own voice
        (`syncmap.video_offset`) and, where it is 2 frames or more (±1 lies inside what the
        models count as in sync), the video analysed again on the audio moved by it. Twice
        the decoding rather than every crop kept: memory stays flat in video length."""
        from .syncmap import video_offset

        votes, self._votes = self._votes, []
        offset, weight = video_offset([v for v, _ in votes], [n for _, n in votes])
        applied = abs(offset) >= ALIGN_MIN_FRAMES and self.options.score
        log.info("alignment: offset %+d frames from %d speech frames", offset, weight)
        result = first
        if applied:
            moved = shifted(audio, -offset * SAMPLES_PER_FRAME)  # voice of frame t at t + k
            result = self._analyse(path, info, moved, vote=False)
            # Each stage's time over both passes (the total is __call__'s).
            timings, before = result.metadata["timings_s"], first.metadata["timings_s"]
            for stage, seconds in before.items():
                if stage != "total":
                    timings[stage] = round(timings.get(stage, 0.0) + seconds, 3)
        result.metadata["alignment"] = {
            "offset_frames": offset,
            "offset_ms": offset * 1000.0 / MODEL_FPS,
            "speech_frames": weight,  # the votes behind the offset
            "applied": bool(applied),
        }
        return result

    def _analyse(
        self, path: str | Path, info: media.MediaInfo, audio: np.ndarray, vote: bool
    ) -> Result:
        """One pass over the video with this audio (`_soundtrack`'s, or moved by --align):
        faces, tracks, scores, sync (`_pass_models`) and, where `vote`, each track's vote for
        the soundtrack's offset."""
        o = self.options
        timings: dict[str, float] = {}
        clock = time.perf_counter()
        self._short_tracks = 0
        self._zoomed_detections = 0
        self._votes = []
        self._sync_seconds = 0.0  # the sync backends' share, a stage of its own
        self._finish_seconds = 0.0  # scoring done as tracks end, outside the stage clocks
        self._pass = models = self._pass_models(vote)
        self._voting = vote
        features = asd_features(audio, reads_mel(self.model))
        if models:
            sync_clock = time.perf_counter()
            self._sync_features = {k: self._sync_backends[k].features(audio) for k in models}
            self._speech = speech_frames(audio)
            self._sync_seconds += time.perf_counter() - sync_clock
        n_audio_frames = media.model_frame_count(len(audio))
        if o.duration is not None:
            n_audio_frames = min(n_audio_frames, int(round(o.duration * MODEL_FPS)))
        timings["audio"] = time.perf_counter() - clock - self._sync_seconds

        if o.faces_csv is not None:
            tracks, n_frames, stage = self._tracks_from_csv(path, info, features, n_audio_frames)
        else:
            tracks, n_frames, stage = self._tracks_from_video(path, info, features, n_audio_frames)
        timings.update(stage)
        if o.score:
            timings["scores"] = timings.get("scores", 0.0) + self._finish_seconds
        if models:
            timings["sync"] = self._sync_seconds

        result = Result(
            path=str(path),
            video_id=Path(path).stem,
            width=info.width,
            height=info.height,
            source_fps=info.fps,
            start=o.start,
            n_frames=n_frames,
            tracks=tracks,
            threshold=o.threshold,
        )
        result.turns = speaking_turns(tracks, o.start, o.threshold, o.min_turn, o.merge_gap)
        timings["total"] = time.perf_counter() - clock
        result.metadata = {
            "syncasd_version": __version__,
            "options": {k: v for k, v in asdict(o).items() if k != "progress"},
            "source": {
                "fps": info.fps,
                "duration": info.duration,
                "video_codec": info.video_codec,
                "audio_codec": info.audio_codec,
                "rotation": info.rotation,
                "audio_stream": info.audio_stream,
                "audio_streams": info.audio_streams,
                "audio_language": info.audio_language,
            },
            "short_tracks_dropped": self._short_tracks,
            "zoomed_detections": self._zoomed_detections,  # frames detected at zoom_size
            "timings_s": {k: round(v, 3) for k, v in timings.items()},
            "real_time_factor": None,  # set by __call__, over every pass
        }
        return result

    @property
    def window(self) -> int:
        """`--window` in model frames (at least 60): the chunk scorer's and sync's window."""
        return max(int(round(self.options.window * MODEL_FPS)), 60)

    def _new_scorer(self, features: np.ndarray, start: int) -> ChunkScorer | DemoScorer:
        o = self.options
        if not o.score:
            return _CropsOnly()  # type: ignore[return-value]
        if o.scoring == "demo":
            scorer = DemoScorer(self.model, features, start)
        else:
            window = self.window
            scorer = ChunkScorer(self.model, features, start, window=window, context=window // 6)
        keep = o.keep_crops or bool(self._pass)
        return _KeepingScorer(scorer) if keep else scorer

    def _append(
        self,
        tracks: list[Track],
        face: FaceTrack,
        scorer: ChunkScorer | DemoScorer,
        entity: str | None = None,
    ) -> None:
        """Score the rest of a finished face track and keep it if it is long enough."""
        if len(face) < self.options.min_track:
            self._short_tracks += len(face) > 0
            return
        clock = time.perf_counter()
        logits, probs = scorer.finish()  # a track's last window is scored here
        self._finish_seconds += time.perf_counter() - clock
        frames = np.arange(face.first, face.last + 1)
        crops = (
            np.concatenate(scorer.crops)[: len(frames)]
            if isinstance(scorer, _KeepingScorer | _CropsOnly)
            else None
        )
        track = Track(
            id=len(tracks),
            shot=face.shot,
            frames=frames,
            boxes=face.boxes(frames).astype(np.float32),
            logits=logits.astype(np.float32),
            probs=probs.astype(np.float32),
            entity=entity,
            crops=crops,
        )
        if self._pass:
            clock = time.perf_counter()
            self._add_sync(track)
            self._sync_seconds += time.perf_counter() - clock
            if not self.options.keep_crops:
                track.crops = None
        tracks.append(track)

    def _add_sync(self, track: Track) -> None:
        """With sync: the track's sync analysis, and its per-frame probability that the lips
        and the voice are in sync within ±1 frame of offset 0 (App. D's smoothed window
        maximum around offset 0, not around the track's own offset: a face 200 ms off its voice
        is not speaking, whatever the offset); with require_sync, speaking ≤ in sync. With
        align: the track's vote for the soundtrack's offset."""
        from .syncmap import analyze_track, speaking_from_sync

        o = self.options
        # As `sync` does: the off-screen ratio over the frames that hold speech.
        speech = track_speech(self._speech, track.start, len(track.frames))
        matrices, analyses = {}, {}  # one of each per backend, shared by --sync and --align
        for name in self._pass:
            backend = self._sync_backends[name]
            matrices[name] = backend.matrix(track.crops, self._sync_features[name], track.start)
            analyses[name] = analyze_track(matrices[name], track.id, speech=speech)
        if o.sync or o.require_sync:
            track.sync = analyses[o.sync_model]
            in_sync = speaking_from_sync(matrices[o.sync_model], 0).p_max
            track.sync_probs = in_sync.astype(np.float32)
            if o.require_sync:
                track.probs = np.minimum(track.probs, track.sync_probs)
        if self._voting:
            self._votes.append((analyses[o.align_model], int(speech.sum())))

    def _tracks_from_video(
        self, path: str | Path, info: media.MediaInfo, features: np.ndarray, n_limit: int
    ) -> tuple[list[Track], int, dict[str, float]]:
        o = self.options
        timing = dict.fromkeys(("decode", "shots", "faces", "crops", "scores"), 0.0)
        tracker = IoUTracker(o.iou, max_gap=max(o.max_gap, 2 * o.detect_every))
        shots = ShotDetector(o.shot_threshold)
        images: dict[int, np.ndarray] = {}  # ring buffer: frames not yet cropped by all tracks
        queue: list[tuple[int, bool, np.ndarray | None]] = []  # (frame, cut, image to detect)
        live: dict[int, _LiveTrack] = {}
        tracks: list[Track] = []
        n_frames = 0
        scale = SHOT_FRAME_WIDTH / info.width
        shot_size = (SHOT_FRAME_WIDTH, max(1, round(info.height * scale)))

        def crop_settled(items: Iterable[_LiveTrack]) -> None:
            for lt in items:
                upto = min(lt.track.settled_until(), n_frames - 1)
                if upto < lt.next_crop:
                    continue
                frames = np.arange(lt.next_crop, upto + 1)
                t0 = time.perf_counter()
                params = lt.track.smoothed(frames)
                crops = np.stack(
                    [self._crop(images[f], *p) for f, p in zip(frames, params, strict=True)]
                )
                t1 = time.perf_counter()
                lt.scorer.push(crops)
                timing["crops"] += t1 - t0
                timing["scores"] += time.perf_counter() - t1
                lt.next_crop = upto + 1

        # Our RetinaFace zooms into shots of small faces; a detector of the caller's does not.
        zoom = (
            ShotZoom(self.face_detector, o.zoom_size)
            if o.zoom_size and isinstance(self.face_detector, RetinaFaceDetector)
            else None
        )

        def flush_queue() -> None:
            t0 = time.perf_counter()
            if zoom is not None:
                found = iter(zoom.detect(queue))
            else:
                detect_frames = [img for _, _, img in queue if img is not None]
                found = iter(self.face_detector.detect(detect_frames) if detect_frames else [])
            timing["faces"] += time.perf_counter() - t0
            ended: list[tuple[FaceTrack, int]] = []  # (track, last frame it may reach)
            for f, cut, img in queue:
                if cut:
                    ended += [(face, f - 1) for face in tracker.reset()]
                if img is not None:
                    ended += [(face, f - 1) for face in tracker.update(f, next(found).boxes)]
            queue.clear()
            for face in tracker.active:
                if face.id not in live:
                    live[face.id] = _LiveTrack(
                        face, self._new_scorer(features, face.first), face.first
                    )
            self._close(ended, live, tracks, crop_settled)
            crop_settled(live.values())
            oldest = min([lt.next_crop for lt in live.values()] + [n_frames])
            for f in [f for f in images if f < oldest]:
                del images[f]

        frames = media.iter_frames(path, o.start, o.duration, origin=info.origin)
        bar = tqdm(
            total=n_limit,
            unit="frame",
            desc=f"{Path(path).name}",
            disable=not o.progress,
            leave=False,
        )
        t0 = time.perf_counter()
        for frame in frames:
            if frame.index >= n_limit:
                break
            t1 = time.perf_counter()
            timing["decode"] += t1 - t0
            image = images[frame.index] = frame.image
            # Bilinear (4 source pixels per output pixel) is 7× cheaper than area averaging
            # here, and the content detector only compares frame-wide means.
            small = cv2.resize(image, shot_size, interpolation=cv2.INTER_LINEAR)
            cut = shots.is_cut(frame.index, small) and frame.index > 0
            t2 = time.perf_counter()
            timing["shots"] += t2 - t1
            detect = frame.index % o.detect_every == 0
            queue.append((frame.index, cut, image if detect else None))
            n_frames = frame.index + 1
            if sum(img is not None for _, _, img in queue) >= o.batch:
                flush_queue()
            bar.update(1)
            t0 = time.perf_counter()
        frames.close()
        flush_queue()
        self._zoomed_detections = zoom.zoomed_images if zoom is not None else 0
        ended = [(face, n_frames - 1) for face in tracker.reset(new_shot=False)]
        self._close(ended, live, tracks, crop_settled)
        bar.close()
        tracks.sort(key=lambda t: (t.start, t.id))
        for i, t in enumerate(tracks):
            t.id = i
        return tracks, n_frames, timing

    def _close(self, ended, live, tracks, crop_settled) -> None:
        """Crop the rest of each ended track, score it and keep it if long enough.

        A detection every N frames vouches for the face until the next detection: the last
        box is held for N − 1 more frames, up to the frame where the track was ended.
        """
        for face, upto in ended:
            lt = live.pop(face.id, None)
            if lt is None:
                continue
            held = min(face.last + self.options.detect_every - 1, upto)
            if held > face.last:
                face.add(held, face.det_boxes[-1])
            if len(face) >= self.options.min_track:
                crop_settled([lt])
            self._append(tracks, lt.track, lt.scorer)

    def _tracks_from_csv(
        self, path: str | Path, info: media.MediaInfo, features: np.ndarray, n_limit: int
    ) -> tuple[list[Track], int, dict[str, float]]:
        """Score the caller's face boxes: one track per entity (split at gaps > max_gap)."""
        o = self.options
        timing = dict.fromkeys(("decode", "crops", "scores"), 0.0)
        faces = read_face_csv(
            o.faces_csv, Path(path).stem, info.width, info.height, o.start, o.max_gap, n_limit
        )
        pending = sorted(faces, key=lambda ft: ft[0].first)
        live: list[tuple[FaceTrack, str, ChunkScorer | DemoScorer]] = []
        tracks: list[Track] = []
        n_frames = 0
        t0 = time.perf_counter()
        frames = media.iter_frames(path, o.start, o.duration, origin=info.origin)
        for frame in frames:
            if frame.index >= n_limit or not (pending or live):
                break
            t1 = time.perf_counter()
            timing["decode"] += t1 - t0
            n_frames = frame.index + 1
            while pending and pending[0][0].first == frame.index:
                face, entity = pending.pop(0)
                live.append((face, entity, self._new_scorer(features, face.first)))
            for face, entity, scorer in list(live):
                cx, cy, s = face.smoothed(np.array([frame.index]))[0]
                t2 = time.perf_counter()
                crop = self._crop(frame.image, cx, cy, s)
                t3 = time.perf_counter()
                scorer.push(crop[None])
                timing["crops"] += t3 - t2
                timing["scores"] += time.perf_counter() - t3
                if frame.index == face.last:
                    live.remove((face, entity, scorer))
                    self._append(tracks, face, scorer, entity)
            t0 = time.perf_counter()
        frames.close()
        for face, entity, scorer in live:  # the video ended before these tracks did
            if scorer.n >= self.options.min_track:
                face.det_frames = [f for f in face.det_frames if f < face.first + scorer.n]
                face.det_boxes = face.det_boxes[: len(face.det_frames)]
                self._append(tracks, face, scorer, entity)
        tracks.sort(key=lambda t: (t.start, t.entity or ""))
        for i, t in enumerate(tracks):
            t.id = i
        return tracks, n_frames, timing


def no_track_reason(result: Result) -> str:
    """Why `result` has no face track, in words a user can act on."""
    short = result.metadata.get("short_tracks_dropped", 0)
    if not short:
        return "no face found"
    min_track = result.metadata["options"]["min_track"]
    return (
        f"{short} face track(s) found, each shorter than --min-track {min_track} frames "
        f"({min_track / MODEL_FPS:.1f} s), so dropped (the video shows "
        f"{result.n_frames / MODEL_FPS:.1f} s); a lower --min-track keeps them"
    )


def read_face_csv(
    path: str | Path,
    video_id: str,
    width: int,
    height: int,
    start: float = 0.0,
    max_gap: int = 10,
    n_limit: int | None = None,
) -> list[tuple[FaceTrack, str]]:
    """Face tracks from an AVA-layout CSV (video_id, frame_timestamp, x1, y1, x2, y2, label,
    entity_id, ...; boxes normalised to [0, 1]; header optional), for one video.

    Timestamps map to the nearest model frame; an entity is split where its boxes stop for more
    than `max_gap` frames.
    """
    rows: dict[str, dict[int, np.ndarray]] = {}
    videos: set[str] = set()
    try:
        with open(path, newline="") as f:
            for n, row in enumerate(csv.reader(f)):
                if not row or (n == 0 and not _is_number(row[1] if len(row) > 1 else "")):
                    continue
                if len(row) < 8:
                    raise InputError(
                        f"{path}:{n + 1}: expected the AVA layout video_id, frame_timestamp, "
                        f"x1, y1, x2, y2, label, entity_id; got {len(row)} columns"
                    )
                videos.add(row[0])
                if row[0] != video_id:
                    continue
                k = int(round((float(row[1]) - start) * MODEL_FPS))
                if k < 0 or (n_limit is not None and k >= n_limit):
                    continue
                box = np.array([float(v) for v in row[2:6]]) * [width, height, width, height]
                rows.setdefault(row[7], {})[k] = box
    except OSError as e:
        raise InputError(f"{path}: cannot read face boxes ({e.strerror or e})") from None
    except ValueError as e:
        raise InputError(f"{path}: not an AVA-layout CSV ({e})") from None
    if not rows:
        known = ", ".join(sorted(videos)[:5]) or "none"
        raise InputError(f"{path}: no face boxes for video_id {video_id!r} (found: {known})")
    faces: list[tuple[FaceTrack, str]] = []
    for entity, boxes in rows.items():
        face: FaceTrack | None = None
        for k in sorted(boxes):
            if face is None or k - face.last > max_gap:
                face = FaceTrack(len(faces), 0, ended=True)
                faces.append((face, entity))
            face.add(k, boxes[k])
    return faces


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def detect(path: str | Path, **options: object) -> Result:
    """Who speaks when in one video: `syncasd.detect("talk.mp4", weights=...)`.

    Options are the fields of `DetectOptions`. To run many videos, build a `Detector` once.
    """
    return Detector(**options)(path)
