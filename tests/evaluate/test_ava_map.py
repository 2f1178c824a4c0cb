"""The AVA mAP against the official script's outputs (../shared/fixtures/ava_map)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import FIXTURES, needs_shared

from syncasd.errors import InputError
from syncasd.evaluate.ava_map import ava_map, average_precision, join

CASES = FIXTURES / "ava_map"


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((CASES / "ava_map_expected.json").read_text())["cases"]


def test_average_precision_hand_computed():
    # Ranked: +, -, +  → precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1; envelope 1 and 2/3.
    labels = np.array([True, False, True])
    scores = np.array([0.9, 0.8, 0.7])
    assert average_precision(labels, scores) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert average_precision(np.array([True, True]), np.array([0.2, 0.1])) == 1.0


@needs_shared
@pytest.mark.parametrize("case", ["case1_basic", "case3_shuffled"])
def test_matches_the_official_script(case, expected):
    got = ava_map(CASES / f"{case}_groundtruth.csv", CASES / f"{case}_predictions.csv")
    assert got == pytest.approx(expected[case]["mAP_full_precision"], abs=1e-9)


@needs_shared
def test_ties_lie_in_the_range_any_tie_order_gives(expected):
    case = expected["case2_ties"]["same_metric_with_explicit_tie_orders"]
    got = ava_map(CASES / "case2_ties_groundtruth.csv", CASES / "case2_ties_predictions.csv")
    assert got == pytest.approx(case["stable_gt_row_order"], abs=1e-9)
    assert case["negatives_first_in_ties"] <= got <= case["positives_first_in_ties"]


@needs_shared
def test_missing_predictions_are_an_error(tmp_path):
    lines = (CASES / "case1_basic_predictions.csv").read_text().splitlines()
    short = tmp_path / "pred.csv"
    short.write_text("\n".join(lines[:-5]) + "\n")
    with pytest.raises(InputError, match="no prediction for 5 of 1998"):
        ava_map(CASES / "case1_basic_groundtruth.csv", short)


@needs_shared
def test_cli_prints_map_on_its_last_line():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "syncasd",
            "eval",
            "ava",
            "--gt",
            str(CASES / "case1_basic_groundtruth.csv"),
            "--pred",
            str(CASES / "case1_basic_predictions.csv"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "mAP: 78.71%"


def test_detect_csv_at_25_fps_joins_ground_truth_at_30_fps(tmp_path):
    """Each 30 fps label takes the nearest 25 fps prediction of its entity (≤ 20 ms away)."""
    import csv

    gt, pred = tmp_path / "gt.csv", tmp_path / "pred.csv"
    with open(gt, "w", newline="") as f:
        for k in range(6):  # 0.005, 0.038, 0.072, 0.105, 0.138, 0.172 s; speaking from 0.1 s
            label = "SPEAKING_AUDIBLE" if k >= 3 else "NOT_SPEAKING"
            csv.writer(f).writerow(["v", f"{k / 30 + 0.005:.3f}", 0, 0, 1, 1, label, "v:0"])
    with open(pred, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(
            ["video_id", "frame_timestamp", "x1", "y1", "x2", "y2", "label", "entity_id", "score"]
        )
        for k, score in enumerate([0.1, 0.2, 0.9, 0.8, 0.3]):  # 0, 0.04, 0.08, 0.12, 0.16 s
            out.writerow(["v", f"{k / 25:.3f}", 0, 0, 1, 1, "", "v:0", score])
    keys, labels, scores = join(gt, pred)
    # 0.005 → 0, 0.038 → 0.04, 0.072 → 0.08, 0.105 and 0.138 → 0.12, 0.172 → 0.16
    assert scores.tolist() == [0.1, 0.2, 0.9, 0.8, 0.8, 0.3]
    assert labels.tolist() == [False, False, False, True, True, True]
    # Ranked 0.9 (−), 0.8 (+), 0.8 (+), 0.3 (+), ...: precision 1/2, 2/3, 3/4 at recall 1/3..1.
    assert ava_map(gt, pred) == pytest.approx(100 * (0.75 * 1 / 3 * 3))


def test_a_label_far_from_every_prediction_is_missing(tmp_path):
    import csv

    gt, pred = tmp_path / "gt.csv", tmp_path / "pred.csv"
    with open(gt, "w", newline="") as f:
        csv.writer(f).writerow(["v", "1.000", 0, 0, 1, 1, "SPEAKING_AUDIBLE", "v:0"])
    with open(pred, "w", newline="") as f:
        csv.writer(f).writerow(["v", "1.080", 0, 0, 1, 1, "", "v:0", 0.5])
    with pytest.raises(InputError, match="no prediction for 1 of 1"):
        join(gt, pred)
