"""face_crop against a direct transcription of the official crop recipe."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from syncasd.faces.crop import face_crop, syncnet_crop

CS = 0.4  # cropScale of the official demo


def official_crop(gray: np.ndarray, cx: float, cy: float, s: float) -> np.ndarray:
    """The demo's crop_video for one frame (on gray), followed by the network's centre crop."""
    bs = s
    bsi = int(bs * (1 + 2 * CS))
    frame = np.pad(gray, ((bsi, bsi), (bsi, bsi)), "constant", constant_values=(110, 110))
    my = cy + bsi
    mx = cx + bsi
    rows = slice(int(my - bs), int(my + bs * (1 + 2 * CS)))
    cols = slice(int(mx - bs * (1 + CS)), int(mx + bs * (1 + CS)))
    face = frame[rows, cols]
    return cv2.resize(face, (224, 224))[56:168, 56:168]


@pytest.fixture(scope="module")
def gray() -> np.ndarray:
    """A 360×480 frame with structure everywhere, so any misplaced pixel shows."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (360, 480), dtype=np.uint8)


@pytest.mark.parametrize(
    ("cx", "cy", "s"),
    [
        (240.0, 180.0, 50.0),  # middle
        (241.37, 177.81, 47.6),  # fractional centre and size
        (12.5, 180.0, 40.2),  # left border
        (470.3, 180.0, 40.2),  # right border
        (240.0, 3.7, 55.5),  # top border
        (240.0, 352.9, 55.5),  # bottom border
        (5.0, 355.0, 30.0),  # bottom-left corner
        (240.0, 180.0, 300.0),  # face larger than the frame
        (100.0, 300.0, 420.7),  # larger than the frame, off centre
        (240.0, 180.0, 3.3),  # tiny face
    ],
)
def test_face_crop_matches_official_recipe(gray, cx, cy, s):
    crop = face_crop(gray, cx, cy, s)
    assert crop.shape == (112, 112)
    assert crop.dtype == np.uint8
    np.testing.assert_array_equal(crop, official_crop(gray, cx, cy, s))


def test_face_crop_pads_with_gray_110():
    black = np.zeros((200, 200), np.uint8)
    # A face at the top-left corner: the crop's upper-left part lies outside the frame.
    crop = face_crop(black, 0.0, 0.0, 50.0)
    assert crop[0, 0] == 110
    assert crop[-1, -1] == 0


@pytest.mark.parametrize(
    "cx, cy, s", [(100.0, 80.0, 30.0), (5.0, 150.0, 60.0), (190.0, 10.0, 45.5)]
)
def test_bgr_frame_gives_the_crop_of_its_gray_conversion(cx, cy, s):
    rng = np.random.default_rng(3)
    bgr = rng.integers(0, 256, size=(160, 200, 3), dtype=np.uint8)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    assert np.array_equal(face_crop(bgr, cx, cy, s), face_crop(gray, cx, cy, s))


def official_syncnet_crop(bgr: np.ndarray, cx: float, cy: float, s: float) -> np.ndarray:
    """syncnet_python's crop_video for one frame: the same box in colour, resized, uncut."""
    bsi = int(s * (1 + 2 * CS))
    frame = np.pad(bgr, ((bsi, bsi), (bsi, bsi), (0, 0)), "constant", constant_values=(110, 110))
    my, mx = cy + bsi, cx + bsi
    face = frame[
        int(my - s) : int(my + s * (1 + 2 * CS)), int(mx - s * (1 + CS)) : int(mx + s * (1 + CS))
    ]
    return cv2.resize(face, (224, 224))


@pytest.mark.parametrize(
    ("cx", "cy", "s"),
    [(240.0, 180.0, 50.0), (12.5, 180.0, 40.2), (240.0, 352.9, 55.5), (100.0, 300.0, 420.7)],
)
def test_syncnet_crop_matches_syncnet_python(cx, cy, s):
    rng = np.random.default_rng(1)
    bgr = rng.integers(0, 256, (360, 480, 3), dtype=np.uint8)
    crop = syncnet_crop(bgr, cx, cy, s)
    assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop, official_syncnet_crop(bgr, cx, cy, s))


def test_syncnet_crop_refuses_gray_frames():
    with pytest.raises(ValueError, match="BGR"):
        syncnet_crop(np.zeros((100, 100), np.uint8), 50.0, 50.0, 20.0)
