"""Face crops with the TalkNet-family recipe, in memory, from full-resolution frames.

The recipe is syncnet_python's `crop_video` (TalkNet, Light-ASD and LR-ASD inherit it): the
face box widened by 40 %, the frame padded with gray 110, resized to 224×224. The ASD models
see the gray centre 112×112 of it (`face_crop`); SyncNet sees all of it in colour
(`syncnet_crop`).
"""

from __future__ import annotations

import cv2
import numpy as np

CROP_SCALE = 0.4
PAD_VALUE = 110  # the recipe pads frames with this gray level
CROP_SIZE = 224  # the recipe resizes the crop to 224×224 ...
MODEL_SIZE = 112  # ... and the ASD models see its centre 112×112


def _region(frame: np.ndarray, cx: float, cy: float, s: float, gray: bool) -> np.ndarray:
    """The recipe's crop of a face of half-size `s` centred at (cx, cy), before resizing.

    Rows [cy − s, cy + (1 + 2·0.4)·s), columns [cx − 1.4·s, cx + 1.4·s) of the frame padded
    with 110 (as the official code pads by int(s·1.8) and slices with int()). `gray`: a BGR
    frame is converted inside the crop only, which gives the same pixels as converting the
    whole frame first, at a fraction of the cost.
    """
    h, w = frame.shape[:2]
    pad = int(s * (1 + 2 * CROP_SCALE))
    my, mx = cy + pad, cx + pad
    # Bounds in the padded frame, clamped as numpy slicing clamps them ...
    top = min(max(int(my - s), 0), h + 2 * pad)
    bottom = min(max(int(my + s * (1 + 2 * CROP_SCALE)), 0), h + 2 * pad)
    left = min(max(int(mx - s * (1 + CROP_SCALE)), 0), w + 2 * pad)
    right = min(max(int(mx + s * (1 + CROP_SCALE)), 0), w + 2 * pad)
    channels = () if gray or frame.ndim == 2 else frame.shape[2:]
    # ... then filled from the frame where they overlap it, without padding the whole image.
    region = np.full((max(bottom - top, 1), max(right - left, 1), *channels), PAD_VALUE, np.uint8)
    y0, y1 = max(top - pad, 0), min(bottom - pad, h)
    x0, x1 = max(left - pad, 0), min(right - pad, w)
    if y1 > y0 and x1 > x0:
        inside = frame[y0:y1, x0:x1]
        if gray and inside.ndim == 3:
            inside = cv2.cvtColor(inside, cv2.COLOR_BGR2GRAY)
        region[y0 + pad - top : y1 + pad - top, x0 + pad - left : x1 + pad - left] = inside
    return region


def face_crop(frame: np.ndarray, cx: float, cy: float, s: float) -> np.ndarray:
    """112×112 uint8 gray ASD model input for a face of half-size `s` centred at (cx, cy).

    `frame` is gray (H×W) or BGR (H×W×3). The recipe's crop (`_region`), resized to 224×224
    (bilinear) and centre-cropped to 112×112.
    """
    face = cv2.resize(_region(frame, cx, cy, s, gray=True), (CROP_SIZE, CROP_SIZE))
    lo = CROP_SIZE // 2 - MODEL_SIZE // 2
    return face[lo : lo + MODEL_SIZE, lo : lo + MODEL_SIZE]


def syncnet_crop(frame: np.ndarray, cx: float, cy: float, s: float) -> np.ndarray:
    """224×224×3 uint8 SyncNet input: the same crop of a BGR (H×W×3) frame, in colour and
    whole, as syncnet_python's `crop_video` writes it (and SyncNet reads it back, BGR)."""
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"SyncNet crops need a BGR frame (H, W, 3), got {frame.shape}")
    return cv2.resize(_region(frame, cx, cy, s, gray=False), (CROP_SIZE, CROP_SIZE))


# How the pipeline crops faces for each kind of model input (`ModelSpec.crop`).
CROPS = {"asd": face_crop, "syncnet": syncnet_crop}
