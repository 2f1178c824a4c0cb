"""`syncasd train`: configs, a real (tiny) run on real clips, resume, export, DDP on 2 CPUs."""

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml
from conftest import CORPUS_CLIPS, DATA, needs_shared
from typer.testing import CliRunner

from syncasd.cli import app
from syncasd.errors import InputError
from syncasd.models import load_model
from syncasd.train import (
    CONFIG_DIR,
    TrainConfig,
    calibrate_export,
    decision_shift,
    resolve_config,
    train,
    visual_variants,
)

AVA = DATA / "weights" / "light_asd_ava.model"


def test_shipped_config_resolves_by_name():
    config = TrainConfig.load("sync-light-asd")
    assert config.model == "light-asd" and config.freeze == ["visual-stem"]
    assert config.loss.beta == 1.0 and config.loss.misalign_beta == 1.0
    assert config.optim.lr == 5e-4 and config.optim.lr_decay == 0.95
    assert config.sample_config().batch_frames == 2500
    assert resolve_config("sync-light-asd.yaml").name == "sync-light-asd.yaml"


def test_every_shipped_config_loads_and_sync_pairs_half_keeps_only_one_frame():
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    configs = {name: TrainConfig.load(name) for name in names}  # an unknown option raises
    for name in ("sync-light-asd-sharp", "sync-light-asd-sharp2"):
        samples = configs[name].sample_config()
        assert samples.small_shift == 1 and samples.misaligned_shift == (2, 25)
    first, second = configs["sync-light-asd-sharp"], configs["sync-light-asd-sharp2"]
    assert second.init == f"{first.output}/model.pt"


@pytest.mark.parametrize(
    "text, message",
    [
        ("modle: light-asd\n", "unknown option 'modle'"),
        ("loss: {betta: 1}\n", "unknown option loss.betta"),
        ("samples: {batch: 1}\n", "unknown option samples.batch"),
        ("model: talknet\n", "trains light-asd, lr-asd, light-talknet, light-talknet-band, light-"),
        ("epochs: 0\n", "epochs must be at least 1"),
        ("freeze: [audio]\n", "freeze takes one of 'visual'"),
        ("model: [unclosed\n", "not valid YAML"),
        ("- a list\n", "a config is a mapping"),
    ],
)
def test_bad_configs_are_one_clear_error(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        TrainConfig.load(path)


def test_a_missing_config_names_the_shipped_ones():
    with pytest.raises(InputError, match=r"shipped configs: ([^)]*)\)") as error:
        resolve_config("nope")
    listed = error.value.args[0].split("shipped configs: ")[1].rstrip(")").split(", ")
    assert listed == sorted(listed)
    assert {"ic-syncnet", "light-syncnet", "sync-light-asd", "sync-light-asd-photometric"} <= set(
        listed
    )


@needs_shared
def test_photometric_training_adds_a_degraded_stem_variant(small_corpus):
    model = load_model("light-asd", weights=str(AVA))
    plain = visual_variants(model, small_corpus, 0, False, "visual-stem")
    both = visual_variants(model, small_corpus, 0, False, "visual-stem", photometric=True)
    assert len(plain) == 1 and len(both) == 2
    np.testing.assert_array_equal(both[0], plain[0])  # the plain cache is shared
    frames = small_corpus.tracks[small_corpus.split("train")[0]].frames
    assert both[1].shape == both[0].shape == (len(small_corpus.labels), 64 * 14 * 14)
    # Dimmer, noisier, flipped or blurred crops give other maps (float16, so not bit-equal).
    difference = np.abs(both[1][frames].astype(float) - both[0][frames].astype(float)).mean()
    assert difference > 0.05 * np.abs(both[0][frames].astype(float)).mean()
    assert TrainConfig.load("sync-light-asd-photometric").sample_config().photometric


def _tiny(tmp_path, corpus, **extra) -> dict:
    return {
        "model": "light-asd",
        "init": str(AVA),
        "data": {"clips": [str(c) for c in CORPUS_CLIPS], "corpus": str(corpus.root)},
        "samples": {"batch_frames": 200},
        "epochs": 1,
        "steps_per_epoch": 2,
        "output": str(tmp_path / "run"),
        **extra,
    }


def _epochs_logged(run) -> list[int]:
    rows = []
    for log in run.glob("logs/*/metrics.csv"):
        with open(log) as f:
            rows += [int(r["epoch"]) for r in csv.DictReader(f) if r.get("val_score")]
    return sorted(rows)


@needs_shared
def test_tiny_run_trains_audio_side_keeps_visual_frozen_and_resumes(tmp_path, small_corpus):
    config = TrainConfig.from_dict(_tiny(tmp_path, small_corpus))
    weights = train(config, progress=False)
    trained, init = load_model("light-asd", weights=weights), load_model("light-asd", weights=AVA)
    t, i = trained.state_dict(), init.state_dict()
    assert all(torch.equal(t[k], i[k]) for k in t if k.startswith(("model.visualEncoder", "lossV")))
    changed = [k for k in t if k.startswith("model.audioEncoder") and not torch.equal(t[k], i[k])]
    assert changed and not torch.equal(t["lossAV.FC.weight"], i["lossAV.FC.weight"])
    assert _epochs_logged(tmp_path / "run") == [0]

    # Run again with one epoch more: it resumes from last.ckpt and trains only epoch 1.
    again = TrainConfig.from_dict(_tiny(tmp_path, small_corpus, epochs=2))
    train(again, progress=False)
    assert _epochs_logged(tmp_path / "run") == [0, 1]


@needs_shared
def test_tiny_run_of_the_sync_talknet_ablation_starts_from_light_asd_encoders(
    tmp_path, small_corpus
):
    """init_partial: Light-ASD's encoders in, the attention backend fresh; the result loads
    as light-sync-talknet and its frozen visual encoder is still Light-ASD's."""
    extra = {"model": "light-sync-talknet", "init_partial": True}
    weights = train(TrainConfig.from_dict(_tiny(tmp_path, small_corpus, **extra)), progress=False)
    trained = load_model("light-sync-talknet", weights=weights).state_dict()
    init = load_model("light-asd", weights=AVA).state_dict()
    visual = [k for k in init if k.startswith("model.visualEncoder")]
    assert visual and all(torch.equal(trained[k], init[k]) for k in visual)
    audio = [k for k in init if k.startswith("model.audioEncoder") and k.endswith("weight")]
    assert any(not torch.equal(trained[k], init[k]) for k in audio)
    assert trained["lossAV.FC.weight"].shape == (2, 256)


@needs_shared
def test_cli_bad_config_exits_2_with_one_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optim: {lrr: 1}\n")
    result = CliRunner().invoke(app, ["train", "light-asd", "--config", str(path)])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "unknown option optim.lrr" in result.output


@needs_shared
def test_ddp_on_two_cpu_processes(tmp_path, small_corpus):
    """Two processes, gloo backend, a few steps each: both ranks train, rank 0 exports."""
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(_tiny(tmp_path, small_corpus, steps_per_epoch=4)))
    cmd = [
        sys.executable,
        "-m",
        "syncasd",
        "train",
        "light-asd",
        "--config",
        str(path),
        "--devices",
        "2",
        "--strategy",
        "ddp",
        "--no-progress",
    ]
    # Its own process group, so a hang is ended for both ranks; faulthandler then prints
    # where each thread of each rank was stuck (SIGABRT), which the failure shows.
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=300)  # about 25 s on 2 cores
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGABRT)
        output, _ = proc.communicate()
        pytest.fail(f"two-rank training hung for 300 s:\n{output[-6000:]}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # a rank left behind
    assert proc.returncode == 0, output[-2000:]
    assert "distributed_backend=gloo" in output
    assert "All distributed processes registered" in output
    load_model("light-asd", weights=tmp_path / "run" / "model.pt")


def test_decision_shift_moves_the_best_threshold_to_one_half(tmp_path):
    # Speaking frames score 0.3-0.4, silent ones 0.1-0.2: any threshold in (0.2, 0.3] is
    # perfect (TPR 1, FPR 0); the first candidate there is the score 0.3 itself.
    labels = np.array([0] * 50 + [1] * 50, bool)
    scores = np.concatenate([np.linspace(0.1, 0.2, 50), np.linspace(0.3, 0.4, 50)])
    shift = decision_shift(labels, scores)
    assert shift == pytest.approx(-np.log(0.3 / 0.7), abs=1e-9)  # −logit(0.3) = 0.8473
    assert decision_shift(np.ones(5, bool), np.full(5, 0.2)) == 0.0  # no negatives: no shift

    # Folded into the head: a frame at 0.3 before is at 0.5 after, rankings unchanged.
    model = load_model("light-asd", weights=AVA)
    path = tmp_path / "w.pt"
    torch.save(model.state_dict(), path)
    calibrate_export(path, shift)
    shifted = load_model("light-asd", weights=path)
    x = torch.randn(1, 7, 128)
    before, after = model.lossAV(x), shifted.lossAV(x)
    assert torch.allclose(after[..., 1] - after[..., 0], before[..., 1] - before[..., 0] + shift)


@needs_shared
def test_a_run_with_waveform_misaligned_negatives_dubs_turns_pink_noise_and_ranking(
    tmp_path, small_corpus
):
    raw = _tiny(tmp_path, small_corpus, steps_per_epoch=1)
    raw["samples"] = {
        "batch_frames": 200,
        "misaligned_shift": [4, 8],
        "dubbed": True,
        "turn_prob": 0.5,
        "turn_frames": [4, 8],
        "pink_noise_prob": 0.5,
        "pink_snr_db": [-5.0, 20.0],
    }
    raw["loss"] = {"offset_beta": 1.0, "offset_shift": 3, "dub_beta": 1.0, "visual_weight": 0.5}
    config = TrainConfig.from_dict(raw)
    assert config.sample_config().misaligned_shift == (4, 8)
    assert config.sample_config().turn_frames == (4, 8)
    assert config.sample_config().pink_snr_db == (-5.0, 20.0)
    weights = train(config, progress=False)
    trained, init = load_model("light-asd", weights=weights), load_model("light-asd", weights=AVA)
    key = "model.audioEncoder.block1.m_3.weight"
    assert not torch.equal(trained.state_dict()[key], init.state_dict()[key])
    # The ranking term ran: a cross-entropy over 7 offsets, near ln 7 = 1.95 at the start.
    with open(next((tmp_path / "run").glob("logs/*/metrics.csv"))) as f:
        rows = list(csv.DictReader(f))
    logged = [float(r["offset"]) for r in rows if r.get("offset")]
    assert logged and all(0.5 < x < 4.0 for x in logged)
    # The dubbed term ran: BCE of pairs the model has not learnt to refuse, near ln 2 or more.
    dub = [float(r["dub"]) for r in rows if r.get("dub")]
    assert dub and all(0.05 < x < 10.0 for x in dub)


def test_stage_two_config_starts_from_stage_one():
    one, two = TrainConfig.load("sync-light-asd"), TrainConfig.load("sync-light-asd-waveform")
    assert two.init == f"{one.output}/model.pt" and two.freeze == one.freeze
    assert two.sample_config().misaligned_shift == (4, 25) and two.epochs == 2


def test_stage_three_config_starts_from_stage_two():
    two, three = (
        TrainConfig.load("sync-light-asd-waveform"),
        TrainConfig.load("sync-light-asd-stage3"),
    )
    assert three.init == f"{two.output}/model.pt" and three.freeze == two.freeze
    assert three.sample_config() == two.sample_config() and three.loss == two.loss
    assert three.seed != two.seed and three.optim.lr == pytest.approx(two.optim.lr * 0.9, abs=1e-6)


def test_stage_five_config_is_stage_four_with_dubbed_negatives():
    four, five = (
        TrainConfig.load("sync-light-asd-photometric"),
        TrainConfig.load("sync-light-asd-dubbed"),
    )
    assert five.init == f"{four.output}/model.pt" and five.freeze == four.freeze
    assert four.init == f"{TrainConfig.load('sync-light-asd-stage3').output}/model.pt"
    assert five.sample_config() == replace(four.sample_config(), dubbed=True)
    assert five.loss == replace(four.loss, dub_beta=1.0) and five.seed != four.seed
    assert TrainConfig.load("light-syncnet-dubbed").sample_config().dubbed


def test_stage_six_config_is_stage_five_with_turns():
    five, six = TrainConfig.load("sync-light-asd-dubbed"), TrainConfig.load("sync-light-asd-turns")
    assert six.init == f"{five.output}/model.pt" and six.freeze == five.freeze
    turns = replace(five.sample_config(), turn_prob=0.3, turn_frames=(25, 60))
    assert six.sample_config() == turns
    assert six.loss == five.loss and six.seed != five.seed and six.epochs == five.epochs


def _tiny_sync(tmp_path, corpus, **extra) -> dict:
    return {
        "model": "ic-syncnet",
        "init": str(tmp_path / "init.pt"),
        "freeze": [],
        "data": {"clips": [str(c) for c in CORPUS_CLIPS], "corpus": str(corpus.root)},
        "samples": {"batch": 6, "hard": 2},
        "sync": {"easy": 3, "tune_epochs": 1},
        "epochs": 1,
        "steps_per_epoch": 2,
        "val_tracks": 2,
        "output": str(tmp_path / "run"),
        **extra,
    }


@needs_shared
def test_icsyncnet_trains_then_tunes_only_batchnorm_and_resumes(tmp_path, small_corpus):
    from syncasd.models.icsyncnet import ICSyncNet

    torch.manual_seed(0)
    torch.save(ICSyncNet.from_config("cpu").state_dict(), tmp_path / "init.pt")
    init = load_model("ic-syncnet", weights=tmp_path / "init.pt").state_dict()
    # Two epochs, the second the drop-and-tune phase.
    config = TrainConfig.from_dict(_tiny_sync(tmp_path, small_corpus, epochs=2))
    weights = train(config, progress=False)
    trained = load_model("ic-syncnet", weights=weights).state_dict()
    assert any(
        not torch.equal(trained[k], init[k]) for k in trained if ".conv" in k or "0.weight" in k
    )
    assert _epochs_logged(tmp_path / "run") == [0, 1]
    # last.ckpt is the last epoch's, whichever epoch was best (what a killed run resumes from).
    assert torch.load(tmp_path / "run" / "last.ckpt", weights_only=True)["epoch"] == 1
    last = torch.load(tmp_path / "run" / "last.ckpt", weights_only=True)["state_dict"]
    best = torch.load(tmp_path / "run" / "best.ckpt", weights_only=True)["state_dict"]
    with open(next((tmp_path / "run").glob("logs/*/metrics.csv"))) as f:
        rows = [r for r in csv.DictReader(f) if r.get("val_acc5")]
    assert all(0 <= float(r["val_acc5"]) <= 100 and float(r["val_acc11"]) >= 0 for r in rows)
    # A third epoch, again the drop-and-tune one, resumed from the second: BatchNorm (its
    # statistics and affine parameters) changes, every other tensor stays as it was.
    again = TrainConfig.from_dict(_tiny_sync(tmp_path, small_corpus, epochs=3))
    train(again, progress=False)
    final = torch.load(tmp_path / "run" / "last.ckpt", weights_only=True)["state_dict"]
    batchnorm = {k for k in final if k.rsplit(".", 1)[-1] in ("running_mean", "running_var")}
    frozen = [k for k in final if final[k].is_floating_point() and not _is_batchnorm(final, k)]
    assert _epochs_logged(tmp_path / "run") == [0, 1, 2]
    assert frozen and all(torch.equal(final[k], last[k]) for k in frozen)
    assert any(not torch.equal(final[k], last[k]) for k in batchnorm)
    assert best.keys() == last.keys()


@needs_shared
def test_icsyncnet_trains_from_a_sync_pack_it_builds_then_reads_without_the_corpus(
    tmp_path, small_corpus
):
    from syncasd.models.icsyncnet import ICSyncNet

    torch.manual_seed(0)
    torch.save(ICSyncNet.from_config("cpu").state_dict(), tmp_path / "init.pt")
    raw = _tiny_sync(tmp_path, small_corpus)
    raw["data"] = {**raw["data"], "pack": str(tmp_path / "pack")}
    weights = train(TrainConfig.from_dict(raw), progress=False)
    assert sorted(p.name for p in (tmp_path / "pack").iterdir()) == [
        "mouths.mp4",
        "pack.json",
        "pack.npz",
    ]
    first = load_model("ic-syncnet", weights=weights).state_dict()
    # Again, elsewhere, with the corpus gone: the pack alone is the data, and the same seed
    # and pack give the same model.
    raw["data"]["corpus"] = str(tmp_path / "no-corpus")
    raw["output"] = str(tmp_path / "again")
    again = load_model("ic-syncnet", weights=train(TrainConfig.from_dict(raw), progress=False))
    assert not (tmp_path / "no-corpus").exists()
    assert all(torch.allclose(v, again.state_dict()[k], atol=1e-5) for k, v in first.items())
    with open(next((tmp_path / "again").glob("logs/*/metrics.csv"))) as f:
        rows = [r for r in csv.DictReader(f) if r.get("val_acc5")]
    assert rows and all(0 <= float(r["val_acc5"]) <= 100 for r in rows)


@needs_shared
def test_prepare_builds_the_sync_pack_and_trains_nothing(tmp_path, small_corpus):
    import subprocess
    import sys

    import yaml

    raw = {
        "model": "ic-syncnet",
        "init": None,
        "freeze": [],
        "data": {"corpus": str(small_corpus.root), "pack": str(tmp_path / "pack")},
        "output": str(tmp_path / "run"),
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    done = subprocess.run(
        [sys.executable, "-m", "syncasd", "train", "ic-syncnet", "--config"]
        + [str(tmp_path / "config.yaml"), "--prepare", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "pack")
    assert (tmp_path / "pack" / "pack.json").is_file() and not (tmp_path / "run").exists()


@needs_shared
def test_mixed_precision_run_exports_float32_weights(tmp_path, small_corpus):
    from syncasd.models.icsyncnet import ICSyncNet

    torch.manual_seed(0)
    torch.save(ICSyncNet.from_config("cpu").state_dict(), tmp_path / "init.pt")
    raw = _tiny_sync(tmp_path, small_corpus, precision="bf16-mixed")
    raw["data"] = {**raw["data"], "pack": str(tmp_path / "pack")}
    state = torch.load(train(TrainConfig.from_dict(raw), progress=False), weights_only=True)
    init = torch.load(tmp_path / "init.pt", weights_only=True)
    floats = [k for k, v in state.items() if v.is_floating_point()]
    assert floats and all(state[k].dtype == torch.float32 for k in floats)
    assert any(not torch.equal(state[k], init[k]) for k in floats)
    with pytest.raises(InputError, match="precision is one of 32-true"):
        TrainConfig.from_dict({**raw, "precision": "fp8"})


def test_gpu_config_is_the_full_batch_recipe_on_a_pack():
    config = TrainConfig.load("ic-syncnet-gpu")
    samples = config.sample_config()
    assert config.data.pack and (samples.batch, samples.hard, config.sync.easy) == (256, 15, 15)
    assert config.epochs * config.steps_per_epoch == 12 * 239


def test_lift_config_fine_tunes_the_shipped_lips_with_the_audio_frozen():
    config = TrainConfig.load("ic-syncnet-lift")
    samples = config.sample_config()
    assert (config.init, config.freeze) == ("ic-syncnet", ["audio"]) and config.data.pack
    assert (samples.lift_prob, samples.lift_rows, samples.gain_db) == (0.5, (-4, 16), (0, 0))
    assert (config.sync.drop_rate, config.sync.tune_epochs, config.optim.lr) == (0.0, 0, 1e-4)


@needs_shared
def test_frozen_audio_run_trains_the_visual_encoder_alone(tmp_path, small_corpus):
    from syncasd.models.icsyncnet import ICSyncNet

    torch.manual_seed(0)
    torch.save(ICSyncNet.from_config("cpu").state_dict(), tmp_path / "init.pt")
    init = torch.load(tmp_path / "init.pt", weights_only=True)
    raw = _tiny_sync(tmp_path, small_corpus, freeze=["audio"])
    raw["data"] = {**raw["data"], "pack": str(tmp_path / "pack")}
    raw["samples"] = {**raw["samples"], "gain_db": [0, 0], "white_noise_prob": 0}
    raw["samples"]["lift_prob"] = 0.5
    raw["sync"] = {"easy": 3, "tune_epochs": 0, "drop_rate": 0.0}
    state = torch.load(train(TrainConfig.from_dict(raw), progress=False), weights_only=True)
    audio = [k for k in state if k.startswith("audio.") or k == "log_temperature"]
    visual = [k for k in state if k.startswith("visual.") and state[k].is_floating_point()]
    assert audio and all(torch.equal(state[k], init[k]) for k in audio)
    assert any(not torch.equal(state[k], init[k]) for k in visual)


def _is_batchnorm(state: dict, key: str) -> bool:
    """Whether `key` is a BatchNorm affine parameter (its module has running statistics)."""
    module = key.rsplit(".", 1)[0]
    return f"{module}.running_mean" in state


def test_icsyncnet_config_refuses_a_frozen_part_and_asd_sample_options(tmp_path):
    raw = {"model": "ic-syncnet", "init": None, "freeze": ["visual"]}
    with pytest.raises(InputError, match=r"trains whole \(freeze: \[\]\)"):
        TrainConfig.from_dict(raw)
    with pytest.raises(InputError, match="light-syncnet trains whole"):
        TrainConfig.from_dict({**raw, "model": "light-syncnet", "freeze": ["audio"]})
    with pytest.raises(InputError, match="light-syncnet has none"):
        TrainConfig.from_dict(
            {**raw, "model": "light-syncnet", "freeze": [], "sync": {"drop_rate": 0}}
        )
    # The frozen audio encoder and the lifted mouths are a sync pack's.
    quiet = {"gain_db": [0, 0], "white_noise_prob": 0}
    with pytest.raises(InputError, match=r"freeze: \[audio\] need a sync pack"):
        TrainConfig.from_dict({**raw, "freeze": ["audio"], "samples": quiet})
    with pytest.raises(InputError, match="samples.lift_prob need a sync pack"):
        TrainConfig.from_dict({**raw, "freeze": [], "samples": {"lift_prob": 0.5}})
    packed = {**raw, "freeze": ["audio"], "data": {"pack": str(tmp_path / "pack")}}
    with pytest.raises(InputError, match="the audio is not augmented"):
        TrainConfig.from_dict(packed)
    assert TrainConfig.from_dict({**packed, "samples": quiet}).freeze == ["audio"]
    with pytest.raises(InputError, match="samples.batch_frames"):
        TrainConfig.from_dict({**raw, "freeze": [], "samples": {"batch_frames": 100}})
    config = TrainConfig.load("ic-syncnet")
    assert config.model == "ic-syncnet" and config.sample_config().hard == 6


@needs_shared
def test_light_syncnet_fine_tunes_the_encoders_and_exports_a_loadable_sync_model(
    tmp_path, small_corpus
):
    raw = {
        "model": "light-syncnet",
        "init": str(AVA),
        "init_partial": True,
        "freeze": [],
        "data": {"clips": [str(c) for c in CORPUS_CLIPS], "corpus": str(small_corpus.root)},
        "samples": {"batch": 4, "frames": 8, "max_shift": 4, "dubbed": True},
        "sync": {"easy": 2},
        "epochs": 1,
        "steps_per_epoch": 2,
        "val_tracks": 2,
        "output": str(tmp_path / "run"),
    }
    weights = train(TrainConfig.from_dict(raw), progress=False)
    trained = load_model("light-syncnet", weights=weights).state_dict()
    ava = load_model("light-asd", weights=AVA).state_dict()
    encoders = [k for k in trained if k.startswith("model.") and k.endswith(".weight")]
    assert encoders and any(not torch.equal(trained[k], ava[k]) for k in encoders)
    with open(next((tmp_path / "run").glob("logs/*/metrics.csv"))) as f:
        rows = list(csv.DictReader(f))
    scores = [float(r["val_acc5"]) for r in rows if r.get("val_acc5")]
    assert len(scores) == 1 and 0 <= scores[0] <= 100
    assert any(float(r["dub"]) > 0 for r in rows if r.get("dub"))  # samples.dubbed ran
    with pytest.raises(InputError, match="samples.hard"):
        TrainConfig.from_dict({**raw, "samples": {"hard": 3}})
    assert TrainConfig.load("light-syncnet").sample_config().frames == 16


@needs_shared
def test_curation_keeps_the_tracks_near_their_own_audio(tmp_path, small_corpus):
    from syncasd.data.syncpairs import SegmentSampleConfig
    from syncasd.models.light_syncnet import LightSyncNet
    from syncasd.offsets import LightSyncOffsets
    from syncasd.train_sync import _curated, track_offsets

    torch.manual_seed(0)
    model = LightSyncNet().eval()
    ids = small_corpus.split("train")
    found = track_offsets(LightSyncOffsets(model, 4), small_corpus, ids)
    speaking = [i for i in ids if small_corpus.labels[small_corpus.tracks[i].frames].any()]
    assert sorted(found) == speaking and all(-4 <= k <= 4 for k in found.values())
    # The offsets are computed once and written beside the run; a second call reads them.
    raw = {"model": "light-syncnet", "freeze": [], "output": str(tmp_path / "run")}
    config = TrainConfig.from_dict(raw)
    samples = SegmentSampleConfig(max_shift=4, max_track_offset=0)
    kept = _curated(model, small_corpus, ids, samples, config, progress=False)
    assert kept == [i for i in ids if abs(found.get(i, 0)) == 0]
    written = json.loads((tmp_path / "run" / "track_offsets.json").read_text())["offsets"]
    assert {int(k): v for k, v in written.items()} == found
    (tmp_path / "run" / "track_offsets.json").write_text(json.dumps({"offsets": {}}))
    assert _curated(model, small_corpus, ids, samples, config, progress=False) == ids
