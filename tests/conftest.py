"""Shared test settings: where the real clips, weights and parity fixtures live.

Test modules import these directly (`from conftest import SHARED, needs_shared`); tests/ is not
a package, so pytest puts this folder on sys.path when it loads this file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATA = SHARED / "data"
FIXTURES = SHARED / "fixtures"

needs_shared = pytest.mark.skipif(
    not SHARED.exists(), reason="../shared (real clips, weights, fixtures) is not present"
)


# The JSON keys of one track in `syncasd sync --json` (issue 9's contract, written out here so
# that a change of the library's keys fails the tests).
SYNC_TRACK_KEYS = {
    "track_id",
    "offset_frames",
    "offset_ms",
    "confidence",
    "prob_at_offset",
    "offscreen_ratio",
    "in_sync",
}


def faceless_video(path: Path, voice: Path, seconds: float = 2.0) -> None:
    """A 320×240 video of smooth moving gradients (no face) with `voice`'s audio."""
    import av

    from syncasd.data.compose import replace_audio
    from syncasd.media import read_audio

    plain = path.with_name("plain.mp4")
    with av.open(str(plain), "w") as c:
        stream = c.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        y, x = np.mgrid[0:240, 0:320]
        for i in range(int(seconds * 25)):
            img = np.stack([(x + 3 * i) % 256, (y + 2 * i) % 256, (x + y) % 256], -1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img.astype(np.uint8), "rgb24")):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)
    replace_audio(plain, path, audio=read_audio(voice)[: int(seconds * 16000)])


def video_copy(
    path: Path, source: Path, seconds: float, rotation: int = 0, pixel_aspect: Fraction = None
) -> None:
    """The first `seconds` of `source` re-encoded (H.264, AAC). With `rotation`, stored as a
    phone stores portrait video: the pixels turned by −`rotation` degrees (counter-clockwise)
    and a display matrix of `rotation` that turns them upright again. With `pixel_aspect` > 1,
    stored anamorphic: squeezed that much across, pixels flagged that wide."""
    import av
    import cv2

    from syncasd.data.compose import replace_audio
    from syncasd.media import read_audio

    stored = path.with_name(f"stored-{path.name}")
    with av.open(str(source)) as src, av.open(str(stored), "w") as dst:
        vin = src.streams.video[0]
        out = dst.add_stream("libx264", rate=vin.average_rate)
        w, h = vin.codec_context.width, vin.codec_context.height
        if pixel_aspect:
            w = 2 * round(w / pixel_aspect / 2)
            out.codec_context.sample_aspect_ratio = pixel_aspect
        out.width, out.height = (h, w) if rotation % 180 else (w, h)
        out.pix_fmt = "yuv420p"
        out.codec_context.options = {"crf": "12"}
        out.set_display_rotation(rotation)
        for frame in src.decode(vin):
            if frame.time >= seconds:
                break
            rgb = frame.to_ndarray(format="rgb24")
            if pixel_aspect:
                rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
            rgb = np.ascontiguousarray(np.rot90(rgb, -rotation // 90))
            dst.mux(out.encode(av.VideoFrame.from_ndarray(rgb, "rgb24")))
        dst.mux(out.encode())
    replace_audio(stored, path, audio=read_audio(source)[: int(seconds * 16000)])


def soundtracks(
    path: Path, source: Path, voices: list[Path], default: int, languages: list[str]
) -> Path:
    """`source`'s video stream (packets copied) with one AAC track per clip of `voices` (its
    voice, as `read_audio` hears it), the `default`-th flagged default, each tagged with its
    language: a film with its original voices and its dubs. Matroska."""
    import av

    from syncasd.media import read_audio

    with av.open(str(source)) as src, av.open(str(path), "w", format="matroska") as dst:
        vin = src.streams.video[0]
        vout = dst.add_stream_from_template(vin)
        tracks = []
        for i, (voice, language) in enumerate(zip(voices, languages, strict=True)):
            stream = dst.add_stream("aac", rate=16000, layout="mono")
            stream.disposition = av.stream.Disposition.default if i == default else 0
            stream.metadata["language"] = language
            tracks.append((stream, read_audio(voice)))
        for packet in src.demux(vin):
            if packet.dts is not None:  # not the demuxer's flush packet
                packet.stream = vout
                dst.mux(packet)
        for stream, samples in tracks:
            frame = av.AudioFrame.from_ndarray(samples[None], format="s16", layout="mono")
            frame.sample_rate, frame.pts = 16000, 0
            dst.mux(stream.encode(frame))
            dst.mux(stream.encode(None))
    return path


def restamped(source: Path, path: Path, audio_delay: float = 0.0, video_delay: float = 0.0) -> Path:
    """`source` remuxed (packets copied, nothing re-encoded) with each stream's timestamps moved
    later by its delay in seconds: the streams start apart, as after an audio delay set in an
    editor or in a broadcast capture, and players play them that far apart."""
    import av

    with av.open(str(source)) as src, av.open(str(path), "w") as dst:
        vin, ain = src.streams.video[0], src.streams.audio[0]
        outs = {
            vin.index: (dst.add_stream_from_template(vin), video_delay),
            ain.index: (dst.add_stream_from_template(ain), audio_delay),
        }
        for packet in src.demux(vin, ain):
            if packet.dts is None:  # the demuxer's flush packet
                continue
            stream, delay = outs[packet.stream.index]
            shift = int(round(delay / packet.time_base))
            packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
            packet.stream = stream
            dst.mux(packet)
    return path


def lag(reference: np.ndarray, signal: np.ndarray, max_lag: int = 8000) -> int:
    """Samples by which `signal` is later than `reference` (cross-correlation peak)."""
    n = min(len(reference), len(signal))
    core = reference[max_lag : n - max_lag].astype(np.float64)
    return int(np.argmax(np.correlate(signal[:n].astype(np.float64), core, "valid"))) - max_lag


def run_without(blocked: tuple[str, ...], code: str) -> str:
    """Run `code` in a fresh interpreter in which importing any of `blocked` fails; its stdout.

    Checks that a module imports where those libraries are not installed (a GPU box)."""
    import subprocess
    import sys

    prelude = f"import sys\nfor name in {blocked!r}: sys.modules[name] = None\n"
    done = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def random_state_dict(manifest: Path) -> dict[str, torch.Tensor]:
    """A procedurally generated random-weight checkpoint (fixtures README §3), rebuilt from its
    manifest by the fixtures' own script, every tensor checked against its sha256."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "build_random_checkpoint", FIXTURES / "build_random_checkpoint.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_state_dict(str(manifest))


class MemoModel(nn.Module):
    """A real ASD model that remembers the logits of inputs it has already scored.

    The key is the exact input bytes, so this only skips recomputing identical chunks (the demo
    scores of overlapping tracks, the same track pushed in different slices); `misses` counts
    the passes that really ran.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model
        self.memo: dict[tuple, torch.Tensor] = {}
        self.misses = 0

    def frame_logits(self, video: torch.Tensor, mfcc: torch.Tensor) -> torch.Tensor:
        key = tuple(
            (tuple(t.shape), hashlib.sha256(t.cpu().numpy().tobytes()).hexdigest())
            for t in (video, mfcc)
        )
        if key not in self.memo:
            self.misses += 1
            self.memo[key] = self.inner.frame_logits(video, mfcc)
        return self.memo[key].clone()

    forward = frame_logits


@pytest.fixture(scope="session")
def gray() -> np.ndarray:
    """The 251 gray 112×112 face crops of VASP ID1/014 as the original demo makes them."""
    return np.load(FIXTURES / "inputs" / "clip014_gray112.npy")


@pytest.fixture(scope="session")
def mfcc_full() -> np.ndarray:
    """python_speech_features MFCC (1004, 13) of the same clip's whole audio."""
    return np.load(FIXTURES / "inputs" / "clip014_mfcc_full.npy")


@pytest.fixture(scope="session")
def light_asd() -> MemoModel:
    """Light-ASD with the AVA weights, loaded once per session (the CPU passes are the cost)."""
    from syncasd.models import load_model

    return MemoModel(load_model("light-asd", weights=DATA / "weights" / "light_asd_ava.model"))


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Downloads and ONNX exports go to a per-session folder, not the user's cache.

    Set through the environment so the `syncasd` subprocesses of the CLI tests use it too.
    """
    import os

    cache = tmp_path_factory.mktemp("syncasd-cache")
    old = os.environ.get("SYNCASD_CACHE")
    os.environ["SYNCASD_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("SYNCASD_CACHE", None)
    else:
        os.environ["SYNCASD_CACHE"] = old


# A CI-sized labelled set for the evaluation protocols: four single-speaker VASP clips (Silero
# VAD labels), one GRID sentence (word-timing labels), and two LivePortrait faces that never
# speak (silent audio; a music bed), 4 s of each.
EVAL_SPEAKING = [
    DATA / "clips" / "vasp" / "ID1" / "014.mp4",
    DATA / "clips" / "vasp" / "ID2" / "013.mp4",
    DATA / "clips" / "vasp" / "ID3" / "015.mp4",
    DATA / "clips" / "vasp" / "ID10" / "017.mp4",
    DATA / "clips" / "grid" / "bbaf2n.mpg",
]
EVAL_NEGATIVE = [
    DATA / "clips" / "liveportrait" / "d3.mp4",
    DATA / "clips" / "liveportrait" / "d6.mp4",
]


@pytest.fixture(scope="session")
def eval_tracks() -> list:
    from syncasd.data.labelled import tracks_from_clips

    options = {
        "model": "light-asd",
        "weights": str(DATA / "weights" / "light_asd_ava.model"),
        "duration": 4.0,
    }
    return tracks_from_clips(EVAL_SPEAKING, **options) + tracks_from_clips(
        EVAL_NEGATIVE, negative=True, **options
    )


@pytest.fixture(scope="session")
def light_asd_scorer():
    """Light-ASD (AVA) through ONNX Runtime as a track scorer, as the eval commands run it."""
    from syncasd.evaluate.tracks import model_scorer

    return model_scorer(f"light-asd={DATA / 'weights' / 'light_asd_ava.model'}")[1]


# A small training corpus: two train identities (VASP ID9, an LRW-AR anchor), two validation
# ones (VASP ID7, VoxCeleb2 id01175), 4 s of each, and a truncated file that must be skipped.
CORPUS_CLIPS = [
    DATA / "clips" / "vasp" / "ID9" / "014.mp4",
    DATA / "clips" / "vasp" / "ID9" / "015.mp4",
    DATA / "clips" / "lrw_ar" / "00139.mp4",
    DATA / "clips" / "lrw_ar" / "00154.mp4",
    DATA / "clips" / "vasp" / "ID7" / "015.mp4",
    DATA / "clips" / "voxceleb2" / "id01175_1oHuiSAB17E_00002.mp4",
]


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory):
    from syncasd.data.corpus import build_corpus
    from syncasd.data.splits import Split
    from syncasd.pipeline import Detector

    tmp = tmp_path_factory.mktemp("corpus")
    broken = tmp / "clips" / "vasp" / "ID11" / "999.mp4"
    broken.parent.mkdir(parents=True)
    data = CORPUS_CLIPS[0].read_bytes()
    broken.write_bytes(data[: len(data) // 3])
    detector = Detector(
        keep_crops=True,
        allow_silent=True,
        duration=4.0,
        model="light-asd",
        weights=str(DATA / "weights" / "light_asd_ava.model"),
    )
    return build_corpus([*CORPUS_CLIPS, broken], tmp / "corpus", Split.load(), detector=detector)


@pytest.fixture(scope="session")
def random_syncnet_weights(tmp_path_factory) -> Path:
    """A seeded random SyncNet v2 checkpoint: SyncNet's cost and plumbing without VGG's weights
    (its offsets mean nothing)."""
    from syncasd.models.syncnet import SyncNetV2

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("syncnet") / "syncnet_random.pt"
    torch.save(SyncNetV2().state_dict(), path)
    return path
