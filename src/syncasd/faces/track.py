"""Shot cuts and face tracking on the 25 fps model timeline.

The tracker is online: detections arrive frame by frame and tracks are handed on as soon as
they end (no detection for `max_gap` frames, a shot cut, or the end of the video), so memory
stays bounded however long the video is. Box positions follow the peers' recipe: linear
interpolation between detections, then a median filter of size 13 on size and centre.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

MEDIAN_KERNEL = 13  # the official smoothing window (frames)


class ShotDetector:
    """PySceneDetect's content detector, fed the small frames the face detector already uses."""

    def __init__(self, threshold: float = 27.0, min_shot_frames: int = 15) -> None:
        from scenedetect import ContentDetector

        self._detector = ContentDetector(threshold=threshold, min_scene_len=min_shot_frames)

    def is_cut(self, index: int, frame_bgr: np.ndarray) -> bool:
        """True if a new shot starts at model frame `index` (frames must come in order)."""
        from scenedetect import FrameTimecode

        cuts = self._detector.process_frame(FrameTimecode(index, fps=25.0), frame_bgr)
        return any(c.frame_num == index for c in cuts)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes (n, 4) and (m, 4) in x1, y1, x2, y2."""
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


@dataclass
class FaceTrack:
    """Detections of one face; boxes for the frames between them are interpolated."""

    id: int
    shot: int
    det_frames: list[int] = field(default_factory=list)
    det_boxes: list[np.ndarray] = field(default_factory=list)
    ended: bool = False

    @property
    def first(self) -> int:
        return self.det_frames[0]

    @property
    def last(self) -> int:
        return self.det_frames[-1]

    def __len__(self) -> int:
        return self.last - self.first + 1

    def add(self, frame: int, box: np.ndarray) -> None:
        self.det_frames.append(frame)
        self.det_boxes.append(np.asarray(box, np.float64))

    def boxes(self, frames: np.ndarray) -> np.ndarray:
        """Linearly interpolated boxes (len(frames), 4) for sorted frames in [first, last]."""
        # Only the detections around the requested span: cost stays flat as the track grows.
        lo = max(bisect.bisect_right(self.det_frames, frames[0]) - 1, 0)
        hi = bisect.bisect_left(self.det_frames, frames[-1]) + 1
        known = np.asarray(self.det_frames[lo:hi])
        boxes = np.asarray(self.det_boxes[lo:hi])
        return np.stack([np.interp(frames, known, boxes[:, i]) for i in range(4)], axis=1)

    def settled_until(self, kernel: int = MEDIAN_KERNEL) -> int:
        """Last frame whose smoothed box can no longer change (inclusive)."""
        return self.last if self.ended else self.last - kernel // 2

    def smoothed(self, frames: np.ndarray, kernel: int = MEDIAN_KERNEL) -> np.ndarray:
        """Median-smoothed (cx, cy, s) for consecutive `frames`; s = half the longer box side.

        Equals scipy.signal.medfilt over the whole track (zero padding at both ends, as the
        official crop code does) for any frame up to `settled_until()`.
        """
        half = kernel // 2
        lo, hi = int(frames[0]) - half, int(frames[-1]) + half
        span = np.arange(lo, hi + 1)
        inside = (span >= self.first) & (span <= self.last)
        b = self.boxes(span[inside])
        values = np.zeros((len(span), 3))
        values[inside, 0] = (b[:, 0] + b[:, 2]) / 2
        values[inside, 1] = (b[:, 1] + b[:, 3]) / 2
        values[inside, 2] = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) / 2
        windows = np.lib.stride_tricks.sliding_window_view(values, kernel, axis=0)
        return np.median(windows, axis=2)  # window i is centred on frames[i]


class IoUTracker:
    """Online tracker: Hungarian assignment on IoU between a track's last box and detections.

    A track ends when it has gone `max_gap` frames without a match; `reset()` ends them all
    (shot cut). Finished tracks shorter than `min_frames` are dropped by the caller.
    """

    def __init__(self, iou_threshold: float = 0.5, max_gap: int = 10) -> None:
        self.iou_threshold = iou_threshold
        self.max_gap = max_gap
        self.active: list[FaceTrack] = []
        self._next_id = 0
        self.shot = 0

    def update(self, frame: int, boxes: np.ndarray) -> list[FaceTrack]:
        """Feed one detection frame; returns the tracks that ended before it."""
        ended = [t for t in self.active if frame - t.last > self.max_gap]
        for t in ended:
            t.ended = True
        self.active = [t for t in self.active if not t.ended]
        unmatched = set(range(len(boxes)))
        if self.active and len(boxes):
            last = np.stack([t.det_boxes[-1] for t in self.active])
            iou = iou_matrix(last, boxes)
            from scipy.optimize import linear_sum_assignment  # here: a slow import

            for r, c in zip(*linear_sum_assignment(-iou), strict=True):
                if iou[r, c] >= self.iou_threshold:
                    self.active[r].add(frame, boxes[c])
                    unmatched.discard(c)
        for c in sorted(unmatched):
            track = FaceTrack(self._next_id, self.shot)
            track.add(frame, boxes[c])
            self._next_id += 1
            self.active.append(track)
        return ended

    def reset(self, new_shot: bool = True) -> list[FaceTrack]:
        """End every active track (at a shot cut or the end of the video)."""
        ended = self.active
        for t in ended:
            t.ended = True
        self.active = []
        if new_shot:
            self.shot += 1
        return ended
