"""Tests for syncasd.data.compose on real VASP clips."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from syncasd.data.compose import compose_side_by_side, replace_audio, silence_audio

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
VASP = DATA / "clips" / "vasp"
CLIP_A = VASP / "ID1" / "014.mp4"  # 251 frames
CLIP_B = VASP / "ID10" / "017.mp4"  # 171 frames
CLIP_SHORT = VASP / "ID1" / "054.mp4"  # 100 frames

pytestmark = pytest.mark.skipif(
    not VASP.is_dir(), reason=f"real media not available at {DATA.resolve()}"
)


def _video(path: Path, keep: tuple[int, ...] = ()) -> tuple[int, tuple[int, int], dict]:
    """Frame count, (width, height) and the RGB frames with indices in ``keep``."""
    kept = {}
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        n = 0
        for frame in c.decode(stream):
            if n in keep:
                kept[n] = frame.to_ndarray(format="rgb24")
            n += 1
        return n, (stream.width, stream.height), kept


def _audio(path: Path) -> np.ndarray:
    """Mono float audio at 16 kHz."""
    with av.open(str(path)) as c:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
        chunks = [f.to_ndarray()[0] for fr in c.decode(audio=0) for f in resampler.resample(fr)]
    return np.concatenate(chunks)


def _envelope(x: np.ndarray, hop: int = 320) -> np.ndarray:
    x = x[: len(x) // hop * hop].reshape(-1, hop)
    return np.sqrt((x.astype(np.float64) ** 2).mean(axis=1))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n].ravel().astype(np.float64), b[:n].ravel())[0, 1])


def _tile(frame: np.ndarray, rect: tuple[float, ...]) -> np.ndarray:
    x1, y1, x2, y2 = (int(v) for v in rect)
    return frame[y1:y2, x1:x2]


def _resized_source(path: Path, index: int, rect: tuple[float, ...]) -> np.ndarray:
    src = _video(path, keep=(index,))[2][index]
    x1, y1, x2, y2 = (int(v) for v in rect)
    return cv2.resize(src, (x2 - x1, y2 - y1), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("compose") / "two.mp4"
    rects = compose_side_by_side([CLIP_A, CLIP_B], out, size=(1280, 720), duration=4.0)
    return out, rects


def test_side_by_side_video(side_by_side) -> None:
    out, rects = side_by_side
    n, size, frames = _video(out, keep=(5,))
    assert size == (1280, 720)
    assert abs(n - 100) <= 1
    assert len(rects) == 2
    (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = rects
    assert 0 <= ax1 < ax2 <= 640 <= bx1 < bx2 <= 1280
    assert ay2 - ay1 == pytest.approx(0.45 * 720, abs=1)
    assert 0 <= ay1 < ay2 <= 720 and 0 <= by1 < by2 <= 720
    for clip, rect in zip([CLIP_A, CLIP_B], rects, strict=True):
        assert _corr(_tile(frames[5], rect), _resized_source(clip, 5, rect)) > 0.9
    # The other clip's face must not match, or the check above proves nothing.
    assert _corr(_tile(frames[5], rects[0]), _resized_source(CLIP_B, 5, rects[0])) < 0.9
    background = frames[5][:, : int(ax1)]
    assert abs(float(background.mean()) - 40) < 3


def test_side_by_side_audio_is_clip0(side_by_side) -> None:
    out, _ = side_by_side
    got = _audio(out)
    assert len(got) / 16000 == pytest.approx(4.0, abs=0.1)
    with av.open(str(out)) as c:
        assert c.streams.audio[0].sample_rate == 16000
    a, b = _audio(CLIP_A)[:64000], _audio(CLIP_B)[:64000]
    assert _corr(_envelope(got), _envelope(a)) > 0.9
    assert _corr(_envelope(got), _envelope(b)) < 0.5
    assert _corr(got, a) > 0.9  # sample-aligned, not merely similar loudness


def test_loops_short_clip(tmp_path: Path) -> None:
    n_src = _video(CLIP_SHORT)[0]
    out = tmp_path / "loop.mp4"
    rects = compose_side_by_side([CLIP_SHORT], out, size=(640, 360), duration=2 * n_src / 25)
    n, _, frames = _video(out, keep=(n_src - 1, n_src))
    assert n == 2 * n_src
    restart = _tile(frames[n_src], rects[0])
    assert _corr(restart, _resized_source(CLIP_SHORT, 0, rects[0])) > 0.95
    got, src = _audio(out), _audio(CLIP_SHORT)
    seconds = n_src * 640
    assert len(got) == pytest.approx(2 * seconds, abs=1100)
    assert _corr(got[seconds : seconds + 16000], src[:16000]) > 0.9


def test_silence_audio(tmp_path: Path) -> None:
    out = tmp_path / "silent.mp4"
    silence_audio(CLIP_B, out)
    assert _video(out)[0] == _video(CLIP_B)[0]
    got = _audio(out)
    assert len(got) / 16000 == pytest.approx(_video(CLIP_B)[0] / 25, abs=0.1)
    assert float(np.sqrt(np.mean(got**2))) < 1e-4


def test_replace_audio_with_other_voice(tmp_path: Path) -> None:
    other = (_audio(CLIP_B) * 32767).astype(np.int16)
    out = tmp_path / "swapped.mp4"
    replace_audio(CLIP_A, out, audio=other)
    assert _video(out)[0] == _video(CLIP_A)[0]
    assert _corr(_envelope(_audio(out)), _envelope(other / 32767)) > 0.9


def test_audio_mix(tmp_path: Path) -> None:
    out = tmp_path / "mix.mp4"
    compose_side_by_side([CLIP_A, CLIP_B], out, size=(640, 360), duration=3.0, audio="mix")
    got = _audio(out)
    a, b = _audio(CLIP_A)[:48000], _audio(CLIP_B)[:48000]
    assert _corr(got, np.clip(a + b, -1, 1)) > 0.9
    assert _corr(got, a) < 0.9 and _corr(got, b) < 0.9


def test_mix_gains_scale_each_clip_before_the_sum(tmp_path: Path) -> None:
    out = tmp_path / "mix.mp4"
    compose_side_by_side(
        [CLIP_A, CLIP_B], out, size=(320, 180), duration=2.0, audio="mix", mix_gains=[0.5, 0.0]
    )
    got, a = _audio(out), _audio(CLIP_A)[:32000]
    # B silenced: half of A's waveform, AAC-coded.
    assert _corr(got, a) > 0.95
    assert float(np.sqrt(np.mean(got**2)) / np.sqrt(np.mean(a**2))) == pytest.approx(0.5, rel=0.05)
    for audio, gains in ((0, [1.0, 1.0]), ("mix", [1.0])):
        with pytest.raises(ValueError, match="one gain per clip"):
            compose_side_by_side([CLIP_A, CLIP_B], out, audio=audio, mix_gains=gains)


def test_turns_switch_the_heard_clip_at_their_starts(tmp_path: Path) -> None:
    out = tmp_path / "turns.mp4"
    compose_side_by_side(
        [CLIP_A, CLIP_B], out, size=(640, 360), duration=4.0, audio=[(0, 1), (1.5, 0), (3.0, 1)]
    )
    got = _audio(out)
    a, b = _audio(CLIP_A)[:64000], _audio(CLIP_B)[:64000]
    # Each turn is its clip's own audio at the same time, sample-aligned; the other's is not.
    for lo, hi, heard, other in ((0, 24000, b, a), (24000, 48000, a, b), (48000, 64000, b, a)):
        inner = slice(lo + 800, hi - 800)  # AAC smears a switch over a few ms
        assert _corr(got[inner], heard[inner]) > 0.9
        assert _corr(got[inner], other[inner]) < 0.5


def test_bad_turns_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "bad.mp4"
    for turns, said in (
        ([(0.5, 0)], "first turn must start at 0"),
        ([(0, 0), (2, 1), (1, 0)], "must increase"),
        ([(0, 0), (1, 2)], "outside 0…1"),
    ):
        with pytest.raises(ValueError, match=said):
            compose_side_by_side([CLIP_A, CLIP_B], out, size=(640, 360), duration=2, audio=turns)
    assert not out.exists()


def test_no_audio(tmp_path: Path) -> None:
    out = tmp_path / "quiet.mp4"
    compose_side_by_side([CLIP_A, CLIP_B], out, size=(320, 180), duration=1.0, audio=None)
    assert _video(out)[0] == 25
    assert float(np.abs(_audio(out)).max()) < 1e-4


def test_failure_keeps_old_output(tmp_path: Path) -> None:
    out = tmp_path / "scene.mp4"
    out.write_bytes(b"old")
    with pytest.raises(ValueError):
        compose_side_by_side([CLIP_A], out, audio=3)
    # Fails after the output container is opened: the MP4 muxer rejects mu-law audio.
    with pytest.raises(ValueError, match="pcm_mulaw"):
        compose_side_by_side([CLIP_A], out, duration=1.0, audio_codec="pcm_mulaw")
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["scene.mp4"]
