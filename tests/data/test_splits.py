import json

import pytest
from conftest import DATA, needs_shared

from syncasd.data.splits import SHARED_SPLIT, Split, find_videos, identity_of


def test_identity_of_each_folder_kind():
    assert identity_of("x/clips/vasp/ID12/003.mp4") == "vasp/ID12"
    assert identity_of("x/clips/voxceleb2/id00100_0azO2YG6Bq0_00002.mp4") == "voxceleb2/id00100"
    assert identity_of("x/clips/styletalk/Obama_clip2.mp4") == "styletalk/obama"
    assert identity_of("x/clips/styletalk/feifeili_clip2_short.mp4") == "styletalk/feifeili"
    assert identity_of("x/clips/lrw_ar/00139.mp4") == "lrw_ar"
    assert identity_of("x/clips/grid/id2_vcd_swwp2s.mpg") == "grid"
    assert identity_of("x/clips/pcavs/00015.mp4") == "pcavs/00015"


def test_shared_split_is_disjoint_and_complete():
    split = Split.load()
    ids = split.identities
    assert not ids["train"] & ids["test"] and not ids["train"] & ids["val"]
    assert not ids["val"] & ids["test"]
    assert split.split_of("c/vasp/ID1/001.mp4") == "test"
    assert split.split_of("c/vasp/ID20/001.mp4") == "train"
    assert split.split_of("c/liveportrait/d0.mp4") is None  # excluded: unknown audio
    assert split.is_negative("c/liveportrait/d3.mp4") and not split.is_negative("c/grid/a.mpg")


def test_an_identity_in_two_splits_is_refused(tmp_path):
    data = json.loads(SHARED_SPLIT.read_text())
    data["splits"]["train"].append("vasp/ID1")
    (tmp_path / "s.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="vasp/ID1 is in both"):
        Split.load(tmp_path / "s.json")


@needs_shared
def test_every_shared_clip_but_the_excluded_has_a_split():
    split = Split.load()
    clips = find_videos([DATA / "clips"])
    assert len(clips) > 2700
    unsplit = {identity_of(c) for c in clips if split.split_of(c) is None}
    assert unsplit == set(split.exclude)
    test = split.clips(DATA / "clips", "test")
    assert {identity_of(c) for c in test} <= split.identities["test"]
    assert sum(identity_of(c).startswith("vasp/") for c in test) >= 150
