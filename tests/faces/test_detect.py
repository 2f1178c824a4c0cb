"""RetinaFace (bundled ONNX weights) on a real frame of clip 014."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DATA, needs_shared

from syncasd.faces.detect import Faces, RetinaFaceDetector
from syncasd.media import iter_frames

CLIP014 = DATA / "clips" / "vasp" / "ID1" / "014.mp4"
FACE_BOX = np.array([56, 2, 169, 154])  # the face in frame 0, x1, y1, x2, y2 (224×224 frame)


@pytest.fixture(scope="module")
def detector() -> RetinaFaceDetector:
    return RetinaFaceDetector()


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """The first 4 BGR frames of clip 014."""
    return [f.image for f in iter_frames(CLIP014, duration=4 / 25)]


@needs_shared
def test_one_face_in_frame(detector, frames):
    (faces,) = detector.detect([frames[0]])
    assert len(faces) == 1
    assert faces.boxes.shape == (1, 4)
    np.testing.assert_allclose(faces.boxes[0], FACE_BOX, atol=6)
    assert faces.scores[0] > 0.9

    marks = faces.landmarks[0]  # left eye, right eye, nose, left and right mouth corner
    assert marks.shape == (5, 2)
    x1, y1, x2, y2 = faces.boxes[0]
    assert np.all((marks[:, 0] > x1) & (marks[:, 0] < x2) & (marks[:, 1] > y1) & (marks[:, 1] < y2))
    assert max(marks[0, 1], marks[1, 1]) < min(marks[3, 1], marks[4, 1])  # eyes above mouth
    assert marks[0, 0] < marks[1, 0] and marks[3, 0] < marks[4, 0]


@needs_shared
def test_two_faces_on_large_canvas_map_to_full_resolution(detector, frames):
    canvas = np.full((720, 1280, 3), 127, np.uint8)
    offsets = [(200, 100), (900, 400)]  # x, y of each pasted 224×224 frame
    for x, y in offsets:
        canvas[y : y + 224, x : x + 224] = frames[0]

    (faces,) = detector.detect([canvas])  # the detector sees it at 640×360

    assert len(faces) == 2
    expected = np.array([FACE_BOX + [x, y, x, y] for x, y in offsets], np.float32)
    found = faces.boxes[np.argsort(faces.boxes[:, 0])]
    np.testing.assert_allclose(found, expected, atol=8)
    assert np.all(faces.scores > 0.9)


@needs_shared
def test_batch_equals_single_calls(detector, frames):
    batch = detector.detect(frames)
    assert len(batch) == 4
    for frame, together in zip(frames, batch, strict=True):
        (alone,) = detector.detect([frame])
        np.testing.assert_array_equal(together.boxes, alone.boxes)
        np.testing.assert_allclose(together.scores, alone.scores, atol=1e-5)
        np.testing.assert_allclose(together.landmarks, alone.landmarks, atol=1e-3)


def test_gray_frame_has_no_face(detector):
    (faces,) = detector.detect([np.full((224, 224, 3), 128, np.uint8)])
    assert len(faces) == 0
    assert faces.boxes.shape == (0, 4)


def test_empty_batch(detector):
    assert detector.detect([]) == []


def test_empty_faces():
    faces = Faces.empty()
    assert len(faces) == 0
    assert faces.landmarks.shape == (0, 5, 2)
