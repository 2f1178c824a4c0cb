"""The `syncasd` command as a user runs it: outputs on real clips, and bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import DATA, faceless_video, lag, needs_shared, soundtracks, video_copy

from syncasd.cli import output_names
from syncasd.media import probe
from syncasd.results import AVA_COLUMNS, EXTRA_COLUMNS

pytestmark = needs_shared

WEIGHTS = DATA / "weights" / "light_asd_ava.model"
CLIP = DATA / "clips" / "vasp" / "ID1" / "014.mp4"


def syncasd(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "syncasd", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=600)


def detect(video: object, out: Path, *extra: object) -> subprocess.CompletedProcess:
    return syncasd(
        "detect",
        video,
        "-o",
        out,
        "--model",
        "light-asd",
        "--weights",
        WEIGHTS,
        "--no-progress",
        *extra,
    )


def assert_one_error_line(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("syncasd: error: ")
    assert "Traceback" not in proc.stderr
    message = lines[0].split(": ", 3)[-1]  # without the path, which names the test
    for word in words:
        assert word in message, lines[0]


def test_four_outputs_on_a_real_clip(tmp_path):
    out = tmp_path / "out"
    proc = detect(CLIP, out, "--duration", "4", "--render", "--min-turn", "0.2")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["014.csv", "014.json", "014.mp4", "014.rttm"]

    rows = list(csv.reader(open(out / "014.csv")))
    assert rows[0][:9] == [
        "video_id",
        "frame_timestamp",
        "entity_box_x1",
        "entity_box_y1",
        "entity_box_x2",
        "entity_box_y2",
        "label",
        "entity_id",
        "score",
    ]
    body = rows[1:]
    assert len(body) == 100  # one face × 100 model frames
    assert [float(r[1]) for r in body[:3]] == [0.0, 0.04, 0.08]
    assert all(r[0] == "014" and r[7] == "014:0" for r in body)
    boxes = np.array([[float(v) for v in r[2:6]] for r in body])
    assert boxes.min() >= 0 and boxes.max() <= 1
    scores = np.array([float(r[8]) for r in body])
    assert ((scores >= 0.5) == np.array([r[6] == "SPEAKING_AUDIBLE" for r in body])).all()
    assert scores.mean() > 0.6

    doc = json.load(open(out / "014.json"))
    assert doc["n_frames"] == 100 and len(doc["tracks"]) == 1
    assert len(doc["tracks"][0]["probs"]) == 100
    assert doc["metadata"]["options"]["duration"] == 4.0

    rttm = (out / "014.rttm").read_text().splitlines()
    assert rttm, "a speaking face gives at least one turn"
    for line in rttm:
        fields = line.split()
        assert fields[0] == "SPEAKER" and fields[1] == "014" and fields[7] == "014:0"
        assert float(fields[4]) >= 0.2

    with av.open(str(out / "014.mp4")) as c:
        assert c.streams.video and c.streams.audio
        assert abs(float(c.streams.video[0].duration * c.streams.video[0].time_base) - 4) < 0.1


def test_help_documents_every_option():
    from dataclasses import fields

    from syncasd.pipeline import DetectOptions

    proc = syncasd("detect", "--help")
    assert proc.returncode == 0
    text = proc.stdout.replace("\n", " ")
    names = {"faces_csv": "--faces", "progress": "--progress"}
    # Crops kept in memory for the evaluation protocols; crop-only runs for sync analysis,
    # cropped as the sync backend reads them.
    library_only = {"keep_crops", "score", "crop"}
    for f in fields(DetectOptions):
        if f.name not in library_only:
            assert names.get(f.name, "--" + f.name.replace("_", "-")) in text, f.name


def test_missing_file(tmp_path):
    assert_one_error_line(detect(tmp_path / "nope.mp4", tmp_path / "out"), "no such file")
    assert not (tmp_path / "out").exists()


def test_empty_file(tmp_path):
    video = tmp_path / "empty.mp4"
    video.touch()
    assert_one_error_line(detect(video, tmp_path / "out"), "empty")


def test_not_a_video(tmp_path):
    video = tmp_path / "notes.mp4"
    video.write_text("these are not the frames you are looking for\n" * 100)
    assert_one_error_line(detect(video, tmp_path / "out"), "not a readable video")


def test_truncated_file(tmp_path):
    data = CLIP.read_bytes()
    video = tmp_path / "cut.mp4"
    video.write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: it is gone
    assert_one_error_line(detect(video, tmp_path / "out"), "truncated")
    assert not (tmp_path / "out").exists()


def test_truncated_file_with_index_first(tmp_path):
    # A "faststart" MP4 announces 10 s, but its data stops at 60 %.
    whole = tmp_path / "faststart.mp4"
    with (
        av.open(str(CLIP)) as src,
        av.open(str(whole), "w", options={"movflags": "+faststart"}) as dst,
    ):
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
    video = tmp_path / "cut.mp4"
    video.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    assert_one_error_line(detect(video, tmp_path / "out"), "truncated")


def test_no_audio_stream(tmp_path):
    proc = detect(DATA / "clips" / "liveportrait" / "d0.mp4", tmp_path / "out")
    assert_one_error_line(proc, "no audio track")


def test_silent_audio_is_refused_unless_allowed(tmp_path):
    video = DATA / "clips" / "liveportrait" / "d3.mp4"  # a moving face over digital silence
    assert_one_error_line(detect(video, tmp_path / "out"), "silent", "--allow-silent")
    proc = detect(video, tmp_path / "out", "--allow-silent", "--duration", "3")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(open(tmp_path / "out" / "d3.csv")))
    assert rows and np.mean([float(r["score"]) for r in rows]) < 0.2


def test_no_face_is_a_warning_with_empty_outputs(tmp_path):
    video = tmp_path / "noface.mp4"
    faceless_video(video, CLIP)
    proc = detect(video, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "warning" in proc.stderr and "no face" in proc.stderr
    rows = list(csv.reader(open(tmp_path / "out" / "noface.csv")))
    assert len(rows) == 1  # header only
    assert json.load(open(tmp_path / "out" / "noface.json"))["tracks"] == []
    assert (tmp_path / "out" / "noface.rttm").read_text() == ""


def test_a_face_seen_too_briefly_is_a_warning_that_says_so(tmp_path):
    # 0.3 s of a talking face: a track of 8 frames, below --min-track 10; "no face found"
    # would send the user looking for a detector problem.
    video = tmp_path / "brief.mp4"
    video_copy(video, CLIP, 0.3)
    proc = detect(video, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "1 face track(s) found, each shorter than --min-track 10 frames" in proc.stderr
    assert "no face found" not in proc.stderr
    proc = syncasd("sync", video)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("each shorter than --min-track 10 frames") == 1, proc.stderr
    proc = detect(video, tmp_path / "out", "--min-track", "5")
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
    assert len(json.load(open(tmp_path / "out" / "brief.json"))["tracks"]) == 1


def test_output_names_tell_videos_with_one_stem_apart():
    names = output_names([Path("/d/a/ID1/014.mp4"), Path("/d/a/ID2/014.mp4"), Path("/d/b/015.mp4")])
    assert names == ["ID1_014", "ID2_014", "015"]
    # The nearest folders that differ; one folder, two suffixes; a file given twice.
    assert output_names([Path("/d/a/s/1.mp4"), Path("/d/b/s/1.mp4")]) == ["a_s_1", "b_s_1"]
    assert output_names([Path("/d/1.mp4"), Path("/d/1.mkv")]) == ["1_mp4", "1_mkv"]
    assert output_names([Path("/d/1.mp4"), Path("/d/1.mp4")]) == ["1", "1_2"]


def test_a_folder_of_videos_sharing_stems_gets_one_output_each(tmp_path):
    clips = tmp_path / "clips"
    for folder, identity in (("a", "ID1"), ("b", "ID2")):
        (clips / folder).mkdir(parents=True)
        (clips / folder / "014.mp4").symlink_to(DATA / "clips" / "vasp" / identity / "014.mp4")
    (clips / "notes.txt").write_text("not a video")
    # A Mac's resource fork beside a clip (AppleDouble, 4 KB): hidden, so not a video to try.
    (clips / "a" / "._014.mp4").write_bytes(b"\x00\x05\x16\x07" + bytes(4092))
    proc = detect(clips, tmp_path / "out", "--duration", "1")
    assert proc.returncode == 0, proc.stderr
    outputs = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert outputs == [f"{n}.{x}" for n in ("a_014", "b_014") for x in ("csv", "json", "rttm")]
    for name in ("a_014", "b_014"):
        rows = list(csv.DictReader(open(tmp_path / "out" / f"{name}.csv")))
        assert rows and {r["video_id"] for r in rows} == {name}
    # Different faces: the two outputs are not one video written twice.
    boxes = [
        json.load(open(tmp_path / "out" / f"{n}.json"))["tracks"][0]["boxes"][0]
        for n in ("a_014", "b_014")
    ]
    assert boxes[0] != boxes[1]
    proc = syncasd(
        "sync", clips, "-o", tmp_path / "sync", "--model", "light-syncnet", "--duration", "2"
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "sync").iterdir()) == [
        "a_014.sync.json",
        "b_014.sync.json",
    ]


def test_stems_with_dots_keep_them_in_every_output_name(tmp_path):
    # "meeting.part1" and "meeting.part2" once both became OUT/meeting.* (Path.with_suffix
    # took ".part1" for the suffix): the second video's outputs replaced the first's.
    clips = tmp_path / "clips"
    clips.mkdir()
    for part, identity in (("part1", "ID1"), ("part2", "ID2")):
        (clips / f"meeting.{part}.mp4").symlink_to(DATA / "clips" / "vasp" / identity / "014.mp4")
    proc = detect(clips, tmp_path / "out", "--duration", "1", "--render")
    assert proc.returncode == 0, proc.stderr
    names = [f"meeting.{p}" for p in ("part1", "part2")]
    outputs = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert outputs == [f"{n}.{x}" for n in names for x in ("csv", "json", "mp4", "rttm")]
    for name in names:
        assert f"→ {tmp_path / 'out' / name}.csv" in proc.stderr
        rows = list(csv.DictReader(open(tmp_path / "out" / f"{name}.csv")))
        assert rows and {r["video_id"] for r in rows} == {name}


def test_a_zoom_size_not_above_the_detector_size_is_refused(tmp_path):
    proc = detect(CLIP, tmp_path / "out", "--zoom-size", "640")
    assert_one_error_line(proc, "--zoom-size 640 must exceed --detector-size 640")
    assert not (tmp_path / "out").exists()


def test_a_film_is_heard_on_the_audio_track_asked_for(tmp_path):
    # A VoxCeleb2 clip (in sync at source) with its own voice on track 0 and a dub, another
    # person's voice, on track 1, flagged default as players would play it. The default
    # model hears the dub, so the face does not speak; on the original track it does.
    from syncasd.media import read_audio

    own = DATA / "clips" / "voxceleb2" / "id00100_yMLqymKvTfA_00043.mp4"
    dub = DATA / "clips" / "vasp" / "ID2" / "013.mp4"
    film = soundtracks(tmp_path / "film.mkv", own, [own, dub], 1, ["eng", "fra"])
    shares = {}
    for track in (None, 0):
        out = tmp_path / f"out{track}"
        extra = ["--render"] if track is None else ["--audio-stream", track]
        proc = syncasd("detect", film, "-o", out, "--no-progress", *extra)
        assert proc.returncode == 0, proc.stderr
        heard = 1 if track is None else 0
        language = ("eng", "fra")[heard]
        assert f"heard audio track {heard} ({language}) of 2" in proc.stderr
        doc = json.load(open(out / "film.json"))
        assert doc["metadata"]["source"]["audio_stream"] == heard
        assert doc["metadata"]["source"]["audio_language"] == language
        (face,) = doc["tracks"]
        shares[heard] = np.mean(np.array(face["probs"]) >= 0.5)
    assert shares[0] > 0.7 and shares[1] < 0.1, shares
    # The annotated copy carries the track that was heard.
    rendered = read_audio(tmp_path / "outNone" / "film.mp4").astype(np.float64)
    n = min(len(rendered), 4 * 16000)
    assert np.corrcoef(rendered[:n], read_audio(dub)[:n].astype(np.float64))[0, 1] > 0.9

    # `sync` hears the default track (the dub) unless asked for another.
    fixed = tmp_path / "fixed.mkv"
    proc = syncasd("sync", film, "-o", tmp_path / "sync", "--fix", fixed)
    assert proc.returncode == 0 and "face track(s) (heard audio track 1 of 2)" in proc.stdout
    (main,) = json.load(open(tmp_path / "sync" / "film.sync.json"))["tracks"]
    verdicts = {1: main["in_sync"]}
    proc = syncasd("sync", film, "--json", "--audio-stream", 0, "--fix", fixed)
    assert proc.returncode == 0, proc.stderr
    (main,) = json.loads(proc.stdout)["tracks"]
    verdicts[0] = main["in_sync"]
    # The repaired copy carries the track analysed (not the default, the dub), moved by its
    # offset.
    voice = read_audio(fixed).astype(np.float64)
    source = read_audio(film, audio_stream=0).astype(np.float64)
    moved = lag(source, voice)
    assert abs(moved + main["offset_frames"] * 640) <= 64
    n = min(len(voice), len(source)) - 4000 - abs(moved)
    aligned = voice[max(moved, 0) : max(moved, 0) + n], source[max(-moved, 0) : max(-moved, 0) + n]
    assert np.corrcoef(*aligned)[0, 1] > 0.9
    assert verdicts == {0: True, 1: False}
    proc = syncasd("sync", film, "--audio-stream", 2)
    assert_one_error_line(proc, "--audio-stream 2 is not one of its 2 audio track(s)")


def test_unreadable_weights(tmp_path):
    bad = tmp_path / "weights.model"
    bad.write_text("not a checkpoint")
    proc = syncasd("detect", CLIP, "-o", tmp_path / "out", "--weights", bad, "--no-progress")
    assert_one_error_line(proc, "not a readable PyTorch checkpoint")


def test_weights_of_another_model(tmp_path):
    other = DATA / "weights" / "lr_asd_ava.model"
    proc = syncasd("detect", CLIP, "-o", tmp_path / "out", "--weights", other, "--no-progress")
    assert_one_error_line(
        proc, "not a sync-light-asd-talknet-icgated checkpoint", "missing", "it fits lr-asd"
    )


def test_several_videos_one_bad(tmp_path):
    out = tmp_path / "out"
    proc = detect(tmp_path / "nope.mp4", out, CLIP, "--duration", "2")
    assert proc.returncode == 2
    assert sorted(p.name for p in out.iterdir()) == ["014.csv", "014.json", "014.rttm"]
    assert proc.stderr.count("syncasd: error:") == 1


@pytest.mark.parametrize("video", ["grid/bbaf2n.mpg", "liveportrait/d10.mp4", "lrs2/00001.mp4"])
def test_other_sources_and_frame_rates(tmp_path, video):
    path = DATA / "clips" / video
    proc = detect(path, tmp_path / "out", "--duration", "3")
    assert proc.returncode == 0, proc.stderr
    doc = json.load(open(tmp_path / "out" / f"{path.stem}.json"))
    # 3 s on the 25 fps timeline, or the whole clip when it is shorter (GRID: 2.98 s).
    assert doc["n_frames"] == min(75, int(probe(path).duration * 25))
    assert len(doc["tracks"]) >= 1


def test_export_writes_an_onnx_model_that_scores_like_torch(tmp_path, gray, mfcc_full):
    import onnxruntime as ort
    import torch

    from syncasd.models import load_model

    out = tmp_path / "light_asd.onnx"
    proc = syncasd("export", "light-asd", "--onnx", out, "--weights", WEIGHTS)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_mode & 0o044, "the file keeps the umask's permissions, not 0600"
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    video = gray[None, :60].astype(np.float32)
    mfcc = mfcc_full[None, :240].astype(np.float32)
    (logits,) = session.run(None, {"video": video, "mfcc": mfcc})
    with torch.no_grad():
        expected = load_model("light-asd", weights=WEIGHTS).frame_logits(
            torch.from_numpy(video), torch.from_numpy(mfcc)
        )
    assert logits.shape == (1, 60, 2)
    assert np.abs(logits - expected.numpy()).max() < 1e-4


def test_models_lists_the_registry():
    proc = syncasd("models")
    assert proc.returncode == 0
    for name in ("light-asd.ava", "light-asd.talkset", "lr-asd.ava"):
        assert name in proc.stdout
    # Our weights say the clock of their training clips; the peers' say nothing of it.
    lines = proc.stdout.splitlines()
    ours = next(line for line in lines if line.startswith("  sync-pair.shared"))
    peer = next(line for line in lines if line.startswith("  light-asd.ava"))
    assert "trained on audio 40 ms late" in ours and "ms late" not in peer


GRID = DATA / "clips" / "grid"
SHORT_CLIPS = [
    GRID / "bbaf2n.mpg",
    GRID / "id2_vcd_swwp2s.mpg",
    DATA / "clips" / "lrs2" / "00009.mp4",
]


def test_eval_unsync_and_ablate_on_real_clips(tmp_path):
    """Three short word-timed clips; the second command reads the crops from the cache."""
    model = f"light-asd={WEIGHTS}"
    proc = syncasd("eval", "unsync", *SHORT_CLIPS, "--model", model, "--report", tmp_path / "u")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "model\tkind\t0%\t25%\t50%\t75%\t100%"
    rows = {tuple(line.split("\t")[:2]): line.split("\t")[2:] for line in lines[1:]}
    assert set(rows) == {
        ("light-asd", "mismatch"),
        ("light-asd", "misalign"),
        ("VAD × lip movement (light-asd)", "mismatch"),
        ("VAD × lip movement (light-asd)", "misalign"),
    }
    original = float(rows[("light-asd", "mismatch")][0])
    assert original == float(rows[("light-asd", "misalign")][0]) > 80
    assert (tmp_path / "u" / "report.md").exists()
    assert (tmp_path / "u" / "map_vs_share_mismatch.png").stat().st_size > 1000

    proc = syncasd("eval", "ablate", *SHORT_CLIPS, "--model", model, "--no-baseline")
    assert proc.returncode == 0, proc.stderr
    header, row = proc.stdout.strip().splitlines()
    assert header == "model\toriginal\tsilenced audio\tlips masked"
    values = [float(v) for v in row.split("\t")[1:]]
    assert row.startswith("light-asd\t") and values[0] == original
    assert values[1] < values[0]  # without the audio it cannot tell speech from silence


def test_eval_needs_labelled_material(tmp_path):
    proc = syncasd("eval", "unsync", "--model", f"light-asd={WEIGHTS}")
    assert proc.returncode == 2 and "no labelled face tracks" in proc.stderr
    assert_one_error_line(
        syncasd("eval", "ablate", tmp_path / "missing.mp4", "--model", f"light-asd={WEIGHTS}"),
        "no such file",
    )


def test_eval_dubbing_and_columbia_from_files(tmp_path):
    gt, pred = tmp_path / "gt.csv", tmp_path / "pred.csv"
    with open(gt, "w", newline="") as f:
        out = csv.writer(f)
        for video, k in [(v, k) for v in ("a", "b") for k in range(10)]:
            out.writerow([video, f"{k / 25:.3f}", 0, 0, 1, 1, "SPEAKING_AUDIBLE", "e"])
    with open(pred, "w", newline="") as f:
        out = csv.writer(f)
        for video, k in [(v, k) for v in ("a", "b") for k in range(10)]:
            score = 0.9 if video == "b" or k < 3 else 0.2
            out.writerow([video, f"{k / 25:.3f}", 0, 0, 1, 1, "", "e", score])
    proc = syncasd("eval", "dubbing", "--gt", gt, "--pred", pred, "--report", tmp_path / "d")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "a\tTPR 30.00%\t(10 speaking frames)",
        "b\tTPR 100.00%\t(10 speaking frames)",
    ]
    assert (tmp_path / "d" / "tpr.png").exists()

    labels = tmp_path / "labels"
    labels.mkdir()
    # One speaker at label frames 0-29 (29.97 fps → model frames 0-24), speaking from frame 15.
    (labels / "bell.txt").write_text(
        "".join(f"{f}\t100\t50\t100\t{int(f >= 15)}\n" for f in range(30))
    )
    with open(tmp_path / "col.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(AVA_COLUMNS + EXTRA_COLUMNS)
        for k in range(25):  # the same box (640×360 frame), logit +2 from model frame 12 on
            logit = 2.0 if k >= 12 else -2.0
            out.writerow(
                ["col", f"{k / 25:.3f}", 0.16, 0.14, 0.31, 0.42, "", "col:0", 0.5, logit, k, 0, 0]
            )
    proc = syncasd("eval", "columbia", "--labels", labels, "--pred", tmp_path / "col.csv")
    assert proc.returncode == 0, proc.stderr
    # Labels speak from label frame 15 = model frame 12; the 5-frame mean of the logits
    # turns positive at model frame 12 too ((−2·2 + 2·3) / 5 = 0.4): every frame right.
    assert proc.stdout.strip().splitlines() == ["bell, ACC:100.00, F1:100.00", "Average F1:100.00"]
    assert_one_error_line(
        syncasd("eval", "columbia", "--labels", tmp_path / "none", "--pred", tmp_path / "col.csv"),
    )
