"""The seed's Table 1 on real tracks: silenced audio, masked lips, VAD × lip movement."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DATA, needs_shared

from syncasd.data.labelled import LabelledTrack
from syncasd.evaluate.ablations import (
    ablate,
    dim,
    mask_lips,
    noisy,
    report,
    shrink_face,
    silence,
    talked_over,
)


def test_mask_lips_zeroes_the_bottom_30_percent():
    crops = np.full((2, 112, 112), 200, np.uint8)
    track = LabelledTrack(
        "v", "e", crops, np.ones(1280, np.int16), np.ones(2, bool), np.arange(2) / 25
    )
    masked = mask_lips(track).crops
    assert (masked[:, 78:] == 0).all() and (masked[:, :78] == 200).all()  # round(112 · 0.7)
    assert (crops == 200).all()  # the original is untouched
    assert not silence(track).audio.any() and track.audio.all()


def _track(crops: np.ndarray) -> LabelledTrack:
    n = len(crops)
    return LabelledTrack(
        "v", "e", crops, np.ones(640 * n, np.int16), np.ones(n, bool), np.arange(n) / 25
    )


def test_shrink_face_keeps_coarse_shapes_and_loses_fine_detail():
    # Left half dark, right half bright, plus a one-pixel checkerboard (the finest detail).
    crops = np.zeros((1, 112, 112), np.uint8)
    crops[:, :, 56:] = 200
    crops[:, ::2, ::2] += 40
    small = shrink_face(_track(crops), 28).crops
    assert small.shape == crops.shape and small.dtype == np.uint8
    # 4 × 4 area averages: the checkerboard becomes its mean, +10 on each half.
    assert abs(int(small[0, 56, 20]) - 10) <= 1 and abs(int(small[0, 56, 90]) - 210) <= 1
    assert small[0, 40:70, 10:40].std() < 1.0  # no checkerboard left
    assert crops[0, 0, 0] == 40  # the original is untouched


def test_dim_scales_the_gray_levels_and_adds_seeded_noise():
    crops = np.full((3, 112, 112), 200, np.uint8)
    out = dim(_track(crops)).crops
    assert out.dtype == np.uint8
    assert abs(out.astype(float).mean() - 70.0) < 0.2  # 200 × 0.35
    assert abs(out.astype(float).std() - 6.0) < 0.2
    assert np.array_equal(out, dim(_track(crops)).crops)  # the same frames every time


def test_noisy_sets_the_noise_below_the_speech_and_leaves_the_rest():
    n = 50  # frames; the first 20 speak (a 1,000-level sine), the rest are silent
    t = np.arange(640 * n) / 16000
    audio = np.where(np.arange(640 * n) < 640 * 20, 1000 * np.sin(2 * np.pi * 220 * t), 0)
    labels = np.arange(n) < 20
    track = LabelledTrack(
        "v", "e", np.zeros((n, 112, 112), np.uint8), audio.astype(np.int16), labels, t[::640]
    )
    out = noisy(track, snr_db=10)
    assert out.audio.dtype == np.int16 and out.audio.shape == track.audio.shape
    # The sine's RMS is 1000/√2; 10 dB below it: 707.1 / √10 = 223.6 on the silent frames.
    assert abs(np.sqrt(np.mean(out.audio[640 * 20 :].astype(float) ** 2)) - 223.6) < 15
    assert np.array_equal(out.audio, noisy(track, snr_db=10).audio)  # seeded
    assert np.array_equal(out.labels, labels) and out.crops is track.crops
    assert np.array_equal(track.audio, audio.astype(np.int16))  # the original is untouched


def test_talked_over_adds_another_videos_voice_below_the_speech():
    n = 50  # frames; each track speaks on its first 20 (a sine), then is silent
    t = np.arange(640 * n) / 16000
    speaking = np.arange(640 * n) < 640 * 20
    labels = np.arange(n) < 20

    def track(video: str, hz: float, level: float) -> LabelledTrack:
        audio = np.where(speaking, level * np.sin(2 * np.pi * hz * t), 0).astype(np.int16)
        return LabelledTrack(video, "e", np.zeros((n, 112, 112), np.uint8), audio, labels, t[::640])

    tracks = [track("a", 220, 1000), track("b", 330, 3000), track("b", 330, 3000)]
    out = talked_over(tracks, snr_db=6)
    assert [o.audio.dtype for o in out] == [np.int16] * 3
    assert all(np.array_equal(o.labels, labels) for o in out)
    # a's donor is b (another video): its voice, RMS 3000/√2 · √(20/50) over the clip, scaled
    # to 6 dB below a's speech (707.1 / 10^0.3 = 354.4) and added where b speaks.
    added = out[0].audio.astype(float) - tracks[0].audio
    rms = 1000 / np.sqrt(2) * 10 ** (-6 / 20) / np.sqrt(20 / 50)
    assert abs(np.sqrt(np.mean(added[speaking] ** 2)) - rms) < 2
    assert abs(np.corrcoef(added[speaking], tracks[1].audio[speaking])[0, 1] - 1) < 1e-3
    assert not added[~speaking].any()  # b is silent there too
    # b's donors are a's video only: a's voice, never b's own.
    for o, own in zip(out[1:], tracks[1:], strict=True):
        extra = o.audio.astype(float) - own.audio
        assert np.corrcoef(extra[speaking], tracks[0].audio[speaking])[0, 1] > 0.999
    assert all(
        np.array_equal(o.audio, p.audio) for o, p in zip(out, talked_over(tracks, 6), strict=True)
    )  # seeded
    with pytest.raises(ValueError, match="two videos"):
        talked_over(tracks[1:], 6)


@needs_shared
def test_ablations_on_real_tracks(eval_tracks, light_asd_scorer, tmp_path):
    from syncasd.evaluate.baselines import VadLipBaseline
    from syncasd.models import load_model

    lips = VadLipBaseline(load_model("light-asd", weights=DATA / "weights" / "light_asd_ava.model"))
    results = [
        ablate(light_asd_scorer, eval_tracks, "light-asd"),
        ablate(lips, eval_tracks, "VAD × lip movement"),
    ]
    asd, baseline = (list(r.maps.values()) for r in results)
    # Measured (original, silenced audio, lips masked). 61 % of these frames are speaking, so
    # a blind guess scores about 61: silence costs Light-ASD 10 points, masking the lips 1.
    assert asd == pytest.approx([90.94, 80.33, 89.69], abs=0.5)
    assert baseline == pytest.approx([92.84, 81.59, 93.85], abs=0.5)
    text = report(eval_tracks, results).save(tmp_path).read_text()
    assert "| light-asd | " in text and "bottom 30%" in text
    assert (tmp_path / "ablations.png").read_bytes()[:4] == b"\x89PNG"
