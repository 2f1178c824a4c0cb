"""IoU tracking and track smoothing on synthetic boxes with hand-computed answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import medfilt

from syncasd.faces.track import FaceTrack, IoUTracker, iou_matrix


def _box(x: float, y: float, size: float = 100.0) -> np.ndarray:
    return np.array([x, y, x + size, y + size], np.float64)


# --- iou_matrix -------------------------------------------------------------------------------


def test_iou_matrix_hand_computed():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 20]], float)
    b = np.array([[0, 0, 10, 10], [5, 5, 15, 15], [20, 20, 30, 30], [0, 10, 10, 20]], float)
    expected = [
        [1.0, 25 / 175, 0.0, 0.0],  # touching edges overlap by zero area
        [100 / 200, 50 / 250, 0.0, 100 / 200],
    ]
    np.testing.assert_allclose(iou_matrix(a, b), expected)


def test_iou_matrix_empty_inputs():
    assert iou_matrix(np.zeros((0, 4)), np.zeros((3, 4))).shape == (0, 3)
    assert iou_matrix(np.zeros((2, 4)), np.zeros((0, 4))).shape == (2, 0)


# --- IoUTracker -------------------------------------------------------------------------------


def test_two_slowly_moving_faces_keep_their_ids():
    tracker = IoUTracker()
    for frame in range(40):
        # Listed in alternating order: matching must follow position, not list order.
        left, right = _box(10 + 2 * frame, 50), _box(400 - 2 * frame, 60)
        boxes = np.stack([left, right] if frame % 2 else [right, left])
        assert tracker.update(frame, boxes) == []
    assert [t.id for t in tracker.active] == [0, 1]
    by_id = {t.id: t for t in tracker.active}
    assert by_id[0].det_frames == list(range(40)) == by_id[1].det_frames
    # Frame 0 listed the right face first, so it got id 0.
    np.testing.assert_array_equal(by_id[0].det_boxes[-1], _box(400 - 78, 60))
    np.testing.assert_array_equal(by_id[1].det_boxes[-1], _box(10 + 78, 50))


def test_face_gone_longer_than_max_gap_ends_its_track():
    tracker = IoUTracker(max_gap=10)
    staying, leaving = _box(0, 0), _box(300, 0)
    for frame in range(10):
        tracker.update(frame, np.stack([staying, leaving]))
    # The second face was last seen at frame 9: 10 frames later it may still come back ...
    for frame in range(10, 20):
        assert tracker.update(frame, staying[None]) == []
    # ... but at frame 20 (11 frames without it) its track ends.
    (ended,) = tracker.update(20, staying[None])
    assert ended.id == 1 and ended.ended and ended.last == 9
    assert [t.id for t in tracker.active] == [0]
    # The same place later starts a new track.
    tracker.update(21, np.stack([staying, leaving]))
    assert [t.id for t in tracker.active] == [0, 2]


def test_face_back_within_max_gap_continues_its_track():
    tracker = IoUTracker(max_gap=10)
    tracker.update(0, _box(0, 0)[None])
    tracker.update(10, _box(0, 0)[None])
    (track,) = tracker.active
    assert track.det_frames == [0, 10]
    assert len(track) == 11


def test_low_iou_starts_a_new_track():
    tracker = IoUTracker(iou_threshold=0.5)
    tracker.update(0, _box(0, 0)[None])
    tracker.update(1, _box(40, 0)[None])  # IoU 60·100 / 14000 = 0.43
    assert [t.id for t in tracker.active] == [0, 1]


def test_reset_ends_all_tracks_and_starts_a_shot():
    tracker = IoUTracker()
    tracker.update(0, np.stack([_box(0, 0), _box(300, 0)]))
    ended = tracker.reset()
    assert [t.id for t in ended] == [0, 1]
    assert all(t.ended and t.shot == 0 for t in ended)
    assert tracker.active == [] and tracker.shot == 1
    tracker.update(1, _box(0, 0)[None])  # same place, new shot: a new track
    (track,) = tracker.active
    assert (track.id, track.shot) == (2, 1)
    tracker.reset(new_shot=False)
    assert tracker.shot == 1


# --- FaceTrack --------------------------------------------------------------------------------


def _track(det_frames: list[int], seed: int = 0) -> FaceTrack:
    rng = np.random.default_rng(seed)
    track = FaceTrack(id=0, shot=0)
    for f in det_frames:
        x, y = rng.uniform(100, 110, 2)
        w, h = rng.uniform(60, 80, 2)
        track.add(f, [x, y, x + w, y + h])
    return track


def test_boxes_interpolate_linearly():
    track = FaceTrack(id=0, shot=0)
    track.add(10, [0, 0, 100, 100])
    track.add(14, [40, 20, 120, 100])
    expected = [[0, 0, 100, 100], [10, 5, 105, 100], [20, 10, 110, 100], [40, 20, 120, 100]]
    np.testing.assert_allclose(track.boxes(np.array([10, 11, 12, 14])), expected)
    assert (track.first, track.last, len(track)) == (10, 14, 5)


def _medfilt_reference(track: FaceTrack) -> np.ndarray:
    """The official recipe: interpolate every frame, then medfilt(13) on cx, cy and s."""
    b = track.boxes(np.arange(track.first, track.last + 1))
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    s = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) / 2
    return np.stack([medfilt(v, kernel_size=13) for v in (cx, cy, s)], axis=1)


def test_smoothed_equals_medfilt_on_ended_track():
    track = _track([5, 6, 7, 9, 12, 13, 14, 15, 20, 21, 22, 23, 24, 25, 30, 31, 32, 40])
    track.ended = True
    frames = np.arange(track.first, track.last + 1)
    np.testing.assert_allclose(track.smoothed(frames), _medfilt_reference(track), atol=1e-9)
    # Any consecutive sub-range gives the same values.
    np.testing.assert_allclose(
        track.smoothed(frames[10:20]), _medfilt_reference(track)[10:20], atol=1e-9
    )


def test_smoothed_settled_frames_do_not_change():
    track = _track(list(range(0, 30)) + [33, 35])
    assert track.settled_until() == 35 - 6
    frames = np.arange(0, track.settled_until() + 1)
    early = track.smoothed(frames)

    extra = _track([36, 37, 39, 41, 42, 50, 51, 52], seed=1)
    for f, box in zip(extra.det_frames, extra.det_boxes, strict=True):
        track.add(f, box)
    track.ended = True

    np.testing.assert_array_equal(track.smoothed(frames), early)
    np.testing.assert_allclose(early, _medfilt_reference(track)[frames], atol=1e-9)


@pytest.mark.filterwarnings("ignore:kernel_size exceeds volume extent")
@pytest.mark.parametrize("length", [1, 5, 13])
def test_smoothed_short_tracks(length):
    track = _track(list(range(100, 100 + length)))
    track.ended = True
    frames = np.arange(100, 100 + length)
    np.testing.assert_allclose(track.smoothed(frames), _medfilt_reference(track), atol=1e-9)
