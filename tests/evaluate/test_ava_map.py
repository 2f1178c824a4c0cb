"""The AVA mAP against the official script's outputs (../shared/fixtures/ava_map)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import FIXTURES, needs_shared

from syncasd.errors import InputError
from syncasd.evaluate.ava_map import ava_map, average_precision

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
