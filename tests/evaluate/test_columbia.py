"""The Columbia ASD protocol (TalkNet's `evaluate_col_ASD`): hand-made cases and a real scene."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, needs_shared

from syncasd.errors import InputError
from syncasd.evaluate.columbia import (
    ColumbiaResult,
    LabelBox,
    PredictedFace,
    SpeakerScore,
    columbia_f1,
    evaluate,
    format_lines,
    label_pixels,
    overlap,
    read_labels,
    read_predictions,
    report,
    smooth_scores,
    to_model_frame,
)
from syncasd.results import AVA_COLUMNS, EXTRA_COLUMNS

HEADER = AVA_COLUMNS + EXTRA_COLUMNS
SIZE = (160, 160)  # label frame for the constructed cases: box coordinates / 160 are exact


def label(frame: int, box: tuple[int, int, int, int], speaking: bool) -> LabelBox:
    return LabelBox(frame, box, speaking, frame)


def face(frame: int, track: int, box_px: tuple[int, int, int, int], logit: float) -> PredictedFace:
    """A predicted face given in label pixels of SIZE (normalised here, as in the CSV)."""
    return PredictedFace(frame, track, tuple(v / SIZE[0] for v in box_px), logit)


def write_csv(path: Path, rows: list[list[object]], header: list[str] = HEADER) -> Path:
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(header)
        out.writerows(rows)
    return path


def csv_row(video: str, frame: int, track: int, box: tuple[float, ...], logit: float) -> list:
    return [video, f"{frame / 25:.3f}", *box, "NOT_SPEAKING", f"{video}:{track}", 0.5, logit,
            frame, track, 0]  # fmt: skip


# --- the pieces -----------------------------------------------------------------------------


def test_label_frames_map_to_25_fps_by_truncation():
    # 30 / 29.97 * 25 = 25.03; 29 / 29.97 * 25 = 24.19; 1 / 29.97 * 25 = 0.83.
    assert [to_model_frame(f) for f in (0, 1, 29, 30, 60)] == [0, 0, 24, 25, 50]
    assert to_model_frame(30, fps=30.0) == 25
    assert to_model_frame(36, fps=30.0) == 30


def test_overlap_is_intersection_over_the_predicted_area():
    # Predicted 4×4 at the origin, label from (2, 2): intersection 2×2 = 4 of 16.
    assert overlap((0, 0, 4, 4), (2, 2, 10, 10)) == 0.25
    # Predicted 2×4 = 8, label 10×5: intersection x 2..4, y 2..5 = 2×3 = 6 → 6/8; the other
    # way round it is 6 over the label's 50.
    assert overlap((2, 2, 4, 6), (0, 0, 10, 5)) == 0.75
    assert overlap((0, 0, 10, 5), (2, 2, 4, 6)) == 6 / 50
    # A predicted box inside the label box overlaps fully whatever the label's size.
    assert overlap((30, 30, 70, 70), (0, 0, 640, 360)) == 1.0
    # Boxes that only touch share no area (no +1 pixel terms), nor do disjoint ones.
    assert overlap((0, 0, 2, 2), (2, 0, 4, 2)) == 0.0
    assert overlap((0, 0, 2, 2), (5, 5, 9, 9)) == 0.0
    assert overlap((3, 3, 3, 8), (0, 0, 10, 10)) == 0.0  # no area: no match, no error


def test_predicted_boxes_are_squared_and_truncated_to_label_pixels():
    # 0.25..0.5 × 0.125..0.625 of 160×160 = x 40..80 (40 wide), y 20..100 (80 high): squared
    # around the centre (60, 60) with half side 40.
    assert label_pixels((0.25, 0.125, 0.5, 0.625), SIZE) == (20, 20, 100, 100)
    assert label_pixels((0.25, 0.125, 0.5, 0.625), SIZE, square=False) == (40, 20, 80, 100)
    # Normalised by the source frame, scaled to the 640×360 label frame, truncated.
    assert label_pixels((0.1, 0.1, 0.2, 0.3), (640, 360), square=False) == (64, 36, 128, 108)
    assert label_pixels((0.1001, 0.2, 0.3, 0.4), (640, 360), square=False)[0] == 64


def test_five_frame_mean_leaves_out_the_last_logit():
    # n = 5, window [max(i-2, 0), min(i+3, 4)): the 10 at the end never counts.
    #   i=0: 1,2,3 → 2; i=1: 1..4 → 2.5; i=2: 1..4 → 2.5; i=3: 2,3,4 → 3; i=4: 3,4 → 3.5
    assert smooth_scores([1, 2, 3, 4, 10]).tolist() == [2.0, 2.5, 2.5, 3.0, 3.5]
    # n = 2: both frames average logits[0:1].
    assert smooth_scores([-1.0, 5.0]).tolist() == [-1.0, -1.0]
    # n = 1: the slice is empty, the logit stands for itself.
    assert smooth_scores([7.0]).tolist() == [7.0]


# --- matching and scoring -------------------------------------------------------------------


def test_f1_and_accuracy_on_a_constructed_track():
    # One face track over frames 0..7 whose box equals the label box.
    #   logits   3    3    3   -3   -3   -3   -3    5
    #   means    3  1.5  0.6 -0.6 -1.8   -3   -3   -3   (the last 5 never counts)
    #   predicted +   +    +    -    -    -    -    -
    #   labels    +   -    +    +    -    -    +    -
    # → TP 2 (0, 2), FP 1 (1), FN 2 (3, 6), TN 3; plus frame 20 labelled speaking without any
    # predicted face: FN 3. F1 = 2·2 / (2·2 + 1 + 3) = 50 %, accuracy = 5 / 9.
    box = (40, 40, 120, 120)
    logits = [3, 3, 3, -3, -3, -3, -3, 5]
    speaking = [1, 0, 1, 1, 0, 0, 1, 0]
    faces = [face(f, 0, box, v) for f, v in enumerate(logits)]
    labels = {"bell": [label(f, box, bool(s)) for f, s in enumerate(speaking)]}
    labels["bell"].append(label(20, box, True))
    result = evaluate(labels, faces, label_size=SIZE)
    bell = result.speaker("bell")
    assert (bell.frames, bell.positives, bell.tp, bell.fp, bell.fn, bell.tn) == (9, 5, 2, 1, 3, 3)
    assert bell.f1 == pytest.approx(50.0)
    assert bell.accuracy == pytest.approx(100 * 5 / 9)
    assert result.average_f1 == pytest.approx(50.0)
    # Only frames the video has count when its length is known.
    assert evaluate(labels, faces, label_size=SIZE, n_frames=8).speaker("bell").frames == 8


def test_scores_are_rounded_to_two_decimals_before_the_sign():
    box = (40, 40, 120, 120)
    labels = {"bell": [label(0, box, True), label(1, box, True)]}
    # Single-frame tracks keep their logit: round(0.004, 2) = 0.0 is not > 0, 0.006 is.
    faces = [face(0, 0, box, 0.004), face(1, 1, box, 0.006)]
    bell = evaluate(labels, faces, label_size=SIZE).speaker("bell")
    assert (bell.tp, bell.fn) == (1, 1)


def test_the_face_covering_the_label_best_decides():
    lab = (20, 20, 80, 80)
    # A: (10,10)-(50,50): 30×30 = 900 of its 1600 inside → 0.5625, says speaking.
    # B: (30,30)-(70,70): inside → 1.0, says not speaking.
    # C: (0,0)-(40,40): 20×20 = 400 of 1600 → 0.25, below 0.5: never considered.
    a = face(0, 0, (10, 10, 50, 50), 2.0)
    b = face(0, 1, (30, 30, 70, 70), -2.0)
    c = face(0, 2, (0, 0, 40, 40), 5.0)
    labels = {"bell": [label(0, lab, True)]}
    assert evaluate(labels, [a, b, c], label_size=SIZE).speaker("bell").tp == 0
    assert evaluate(labels, [a, c], label_size=SIZE).speaker("bell").tp == 1
    assert evaluate(labels, [c], label_size=SIZE).speaker("bell").fn == 1  # no match: negative
    # Equal overlaps: the higher (rounded) score wins, as the original's sorted pairs.
    twin = face(0, 3, (30, 30, 70, 70), 1.0)
    assert evaluate(labels, [b, twin], label_size=SIZE).speaker("bell").tp == 1


def test_faces_only_match_labels_of_their_own_frame():
    box = (40, 40, 120, 120)
    labels = {"bell": [label(1, box, True)]}
    faces = [face(0, 0, box, 4.0), face(2, 1, box, 4.0)]
    assert evaluate(labels, faces, label_size=SIZE).speaker("bell").fn == 1


def test_excluded_speakers_stay_out_of_the_average_and_the_printout():
    box = (40, 40, 120, 120)
    faces = [face(0, 0, box, 1.0)]
    labels = {"bell": [label(0, box, True)], "abbas": [label(0, box, False)]}
    result = evaluate(labels, faces, label_size=SIZE)
    assert [s.name for s in result.speakers] == ["abbas", "bell"]
    assert result.speaker("abbas").fp == 1 and result.speaker("abbas").f1 == 0.0
    assert result.average_f1 == 100.0
    assert format_lines(result) == ["bell, ACC:100.00, F1:100.00", "Average F1:100.00"]
    everyone = evaluate(labels, faces, label_size=SIZE, exclude=())
    assert everyone.average_f1 == 50.0
    assert format_lines(everyone)[0] == "abbas, ACC:0.00, F1:0.00"


# --- files ----------------------------------------------------------------------------------


def test_read_labels_maps_frames_and_boxes(tmp_path):
    (tmp_path / "bell.txt").write_text("0\t10\t20\t30\t1\n1\t12\t20\t30\t0\n\n30\t5\t6\t7\t1\n")
    (tmp_path / "long.txt").write_text("29\t0\t0\t50\t0\n")
    (tmp_path / "notes.md").write_text("not a label file")
    labels = read_labels(tmp_path)
    assert list(labels) == ["bell", "long"]
    assert labels["bell"] == [
        LabelBox(0, (10, 20, 40, 50), True, 0),
        LabelBox(0, (12, 20, 42, 50), False, 1),  # two label frames on model frame 0
        LabelBox(25, (5, 6, 12, 13), True, 30),
    ]
    assert labels["long"] == [LabelBox(24, (0, 0, 50, 50), False, 29)]
    assert read_labels(tmp_path, fps=25.0)["bell"][2].frame == 30


@pytest.mark.parametrize(
    "line, message",
    [
        ("12\t10\t20\t30", "bell.txt:2: expected 5 integers 'frame x y size label'"),
        ("12\t10\t20\t30.5\t1", "bell.txt:2: expected 5 integers"),
        ("12\t10\t20\t30\tspeaking", "bell.txt:2: expected 5 integers"),
        ("12\t10\t20\t30\t2", "bell.txt:2: expected frame >= 0, size > 0 and label 0 or 1"),
        ("12\t10\t20\t0\t1", "bell.txt:2: expected frame >= 0, size > 0"),
    ],
)
def test_malformed_label_lines_are_errors_with_file_and_line(tmp_path, line, message):
    (tmp_path / "bell.txt").write_text(f"0\t10\t20\t30\t1\n{line}\n")
    with pytest.raises(InputError, match=message):
        read_labels(tmp_path)


def test_a_folder_without_label_files_is_an_error(tmp_path):
    with pytest.raises(InputError, match="no label files"):
        read_labels(tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        read_labels(tmp_path / "missing")


def test_read_predictions_checks_columns_and_videos(tmp_path):
    box = (0.25, 0.25, 0.5, 0.5)
    rows = [csv_row("a", 0, 0, box, 1.5), csv_row("a", 1, 0, box, -0.5)]
    one = write_csv(tmp_path / "one.csv", rows)
    assert read_predictions(one) == [
        PredictedFace(0, 0, box, 1.5),
        PredictedFace(1, 0, box, -0.5),
    ]
    two = write_csv(tmp_path / "two.csv", [*rows, csv_row("b", 0, 0, box, 2.0)])
    with pytest.raises(InputError, match=r"rows of 2 videos \(a, b\); pass the video_id"):
        read_predictions(two)
    assert read_predictions(two, video_id="b") == [PredictedFace(0, 0, box, 2.0)]
    with pytest.raises(InputError, match="no rows for video_id 'c' \\(found: a, b\\)"):
        read_predictions(two, video_id="c")

    short = HEADER[:9] + ["model_frame"]  # a plain AVA CSV: no logit, no track
    ava = write_csv(tmp_path / "ava.csv", [[*r[:9], r[10]] for r in rows], header=short)
    with pytest.raises(InputError, match="missing column\\(s\\) logit, track; expected"):
        read_predictions(ava)
    bad = write_csv(tmp_path / "bad.csv", [rows[0], csv_row("a", 1, 0, box, "nan?")])
    with pytest.raises(InputError, match="bad.csv:3: expected integer model_frame"):
        read_predictions(bad)
    with pytest.raises(InputError, match="cannot read"):
        read_predictions(tmp_path / "missing.csv")


def test_columbia_f1_from_files_and_the_report(tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    # Label frames 0..5 (29.97 fps) fall on model frames 0, 0, 1, 2, 3, 4; box 40..120.
    (labels / "bell.txt").write_text("".join(f"{f}\t40\t40\t80\t1\n" for f in range(6)))
    (labels / "sick.txt").write_text("".join(f"{f}\t40\t40\t80\t0\n" for f in range(6)))
    # One track on model frames 0..4, logits 1 1 1 1 -9: means 1 1 1 1 1 (the -9 never counts).
    box = (0.25, 0.25, 0.75, 0.75)
    rows = [csv_row("v", f, 0, box, v) for f, v in enumerate([1, 1, 1, 1, -9])]
    predictions = write_csv(tmp_path / "pred.csv", rows)
    result = columbia_f1(labels, predictions, label_size=SIZE)
    assert result.speaker("bell") == SpeakerScore("bell", 6, 6, 6, 0, 0)
    assert result.speaker("sick") == SpeakerScore("sick", 6, 0, 0, 6, 0)
    assert result.average_f1 == 50.0
    assert format_lines(result) == [
        "bell, ACC:100.00, F1:100.00",
        "sick, ACC:0.00, F1:0.00",
        "Average F1:50.00",
    ]

    path = report(result).save(tmp_path / "report")
    text = path.read_text()
    assert "| bell | 6 | 6 | 100.00 | 100.00 |" in text
    assert "| sick | 6 | 0 | 0.00 | 0.00 |" in text
    assert "Average F1: 50.00" in text
    assert (tmp_path / "report" / "f1_per_speaker.png").stat().st_size > 1000


def test_result_without_included_speakers_has_no_average():
    result = ColumbiaResult((SpeakerScore("abbas", 1, 1, 1, 0, 0),))
    assert np.isnan(result.average_f1)
    assert format_lines(result) == ["Average F1:nan"]


# --- a real two-face scene ------------------------------------------------------------------

WEIGHTS = DATA / "weights" / "light_asd_ava.model"
SPEAKER = DATA / "clips" / "vasp" / "ID1" / "014.mp4"  # its voice is the scene's audio
SILENT = DATA / "clips" / "vasp" / "ID10" / "017.mp4"  # talks too, but is not heard
LABEL_FRAMES = 120  # round(4 s × 29.97 fps) frames, on model frames 0..99


def speech_model_frames(path: Path, n_frames: int) -> np.ndarray:
    """Per 25 fps frame: speech by energy (as tests/test_pipeline.py), pauses ≤ 0.2 s bridged.

    Columbia marks speaking segments, which run through short pauses between words.
    """
    from syncasd import media

    audio = media.read_audio(path).astype(np.float64)[: n_frames * 640]
    rms = np.sqrt((audio.reshape(-1, 640) ** 2).mean(axis=1))
    speech = rms > 0.2 * np.percentile(rms, 95)
    on = np.flatnonzero(speech)
    for a, b in zip(on[:-1], on[1:], strict=True):
        if b - a - 1 <= 5:
            speech[a:b] = True
    return speech


@needs_shared
def test_real_two_face_scene(tmp_path):
    import syncasd
    from syncasd.data.compose import compose_side_by_side
    from syncasd.results import write_csv as write_predictions

    video = tmp_path / "two.mp4"
    tiles = compose_side_by_side(
        [SPEAKER, SILENT], video, size=(640, 360), fps=30000 / 1001, duration=4.0
    )
    result = syncasd.detect(video, model="light-asd", weights=str(WEIGHTS))
    assert result.n_frames == 100 and len(result.tracks) == 2
    predictions = tmp_path / "pred.csv"
    write_predictions(result, predictions)

    # Label box: the whole tile. The clips are 224×224 face crops, so each tile is a 162×162
    # square holding one head, like Columbia's square head boxes; a detected face lies inside
    # it and overlaps it fully. The scene's audio is clip 0's own, from its start.
    speech = speech_model_frames(SPEAKER, 100)
    labels = tmp_path / "labels"
    labels.mkdir()
    for name, (x1, y1, x2, _), heard in (("ID1", tiles[0], True), ("ID10", tiles[1], False)):
        box = f"{int(x1)}\t{int(y1)}\t{int(x2 - x1)}"
        lines = [
            f"{f}\t{box}\t{int(heard and speech[to_model_frame(f)])}" for f in range(LABEL_FRAMES)
        ]
        (labels / f"{name}.txt").write_text("\n".join(lines) + "\n")

    scores = columbia_f1(labels, predictions, exclude=())
    speaker, silent = scores.speaker("ID1"), scores.speaker("ID10")
    assert speaker.frames == silent.frames == LABEL_FRAMES
    # ID1/014 speaks on model frames 0..79 and 97..99 (pause 80..96): label frames 0..95
    # (f < 80 × 29.97 / 25 = 95.9) and 117..119 (f ≥ 97 × 29.97 / 25 = 116.3).
    assert speaker.positives == 96 + 3 and silent.positives == 0
    # Measured: ID1 TP 97, FP 10, FN 2 → F1 94.17, accuracy 90.00 (Light-ASD keeps the speaker
    # talking into the pause). ID10 has no positive label, so its F1 is 0 by definition; it
    # moves its lips to its own (unheard) words and Light-ASD calls it speaking on 104 of 120
    # frames: accuracy 13.33.
    assert speaker.f1 == pytest.approx(94.17, abs=2)
    assert speaker.accuracy == pytest.approx(90.0, abs=2)
    assert silent.f1 == 0.0
    assert silent.accuracy == pytest.approx(13.33, abs=2)
    assert scores.average_f1 == pytest.approx(speaker.f1 / 2)
