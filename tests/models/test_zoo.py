"""The registry's bundled weights: ours ship in the package and load with no network."""

import urllib.request

import pytest
import torch
from conftest import DATA
from typer.testing import CliRunner

from syncasd.cli import app
from syncasd.defaults import DEFAULT_MODEL
from syncasd.errors import InputError, WeightsError
from syncasd.models import get_spec, load_model, zoo
from syncasd.pipeline import DetectOptions


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.mark.parametrize(
    "name",
    [
        "sync-light-asd-talknet-icgated",
        "sync-light-asd-talknet-gated",
        "sync-light-asd-gated",
        "sync-light-talknet-gated",
        "sync-light-asd-ensemble",
        "sync-light-asd",
    ],
)
def test_our_models_are_sync_aware_and_bundled(name):
    spec = get_spec(name)
    assert spec.sync_aware and spec.checkpoints[spec.default_checkpoint].bundled
    path = zoo.WEIGHTS_DIR / spec.checkpoints["shared"].filename
    assert path.is_file() and path.stat().st_size < 25 * 2**20
    assert (zoo.WEIGHTS_DIR / "sync_light_asd.md").is_file()  # their model card
    assert zoo.sha256_file(path) == spec.checkpoints["shared"].sha256


def test_every_bundled_file_is_a_registry_checkpoint_with_its_model_card():
    bundled = {
        ckpt.filename: ckpt
        for spec in zoo.REGISTRY.values()
        for ckpt in spec.checkpoints.values()
        if ckpt.bundled
    }
    files = sorted(p.name for p in zoo.WEIGHTS_DIR.glob("*.pt"))
    assert files == sorted(bundled)
    cards = {"sync_light_asd_gated.pt": "sync_light_asd.md", "ic_syncnet.pt": "ic_syncnet.md"}
    for name in files:
        path = zoo.WEIGHTS_DIR / name
        assert zoo.sha256_file(path) == bundled[name].sha256
        assert path.stat().st_size < 25 * 2**20 and (zoo.WEIGHTS_DIR / cards[name]).is_file()


def test_the_default_is_the_ic_gated_triple():
    assert DetectOptions().model == DEFAULT_MODEL == "sync-light-asd-talknet-icgated"


def test_bundled_weights_load_offline(no_network):
    model = load_model(DEFAULT_MODEL)
    assert not model.training
    shared = load_model(f"{DEFAULT_MODEL}.shared")
    assert shared.state_dict().keys() == model.state_dict().keys()
    assert not load_model("sync-light-asd").training


def test_bundled_model_keeps_the_ava_visual_stem():
    """Trained with the first two visual blocks frozen: the AVA checkpoint's, bit for bit;
    block3, the audio encoder and the backend were trained."""
    ava = load_model("light-asd", weights=DATA / "weights" / "light_asd_ava.model").state_dict()
    model = load_model("sync-light-asd")
    ours = model.state_dict()
    frozen = [k for k in ours if k.startswith(model.stem_modules)]
    assert len(frozen) > 20 and all(torch.equal(ours[k], ava[k]) for k in frozen)
    for trained in (
        "model.visualEncoder.block3.s_3.weight",
        "model.audioEncoder.block1.m_3.weight",
        "model.GRU.gru_forward.weight_ih_l0",
    ):
        assert not torch.equal(ours[trained], ava[trained])


def test_damaged_bundled_weights_say_reinstall(tmp_path, monkeypatch):
    damaged = tmp_path / zoo.BUNDLED_FILE
    damaged.write_bytes(b"not the weights")
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(WeightsError, match="missing or damaged; reinstall"):
        load_model("sync-light-asd")


def test_a_view_takes_its_subtrees_under_the_models_names():
    state = {"a.w": torch.ones(1), "b.w": torch.zeros(2), "b.x.y": torch.zeros(3)}
    whole = zoo.Checkpoint(None, None, "f.pt")
    assert whole.select(state) is state
    view = zoo.Checkpoint(None, None, "f.pt", subtrees=(("", "b."),))
    assert {k: v.shape[0] for k, v in view.select(state).items()} == {"w": 2, "x.y": 3}
    renamed = zoo.Checkpoint(None, None, "f.pt", subtrees=(("c.", "b."), ("a.", "a.")))
    assert set(renamed.select(state)) == {"c.w", "c.x.y", "a.w"}


def test_models_command_says_bundled():
    out = CliRunner().invoke(app, ["models"]).output
    # IC-SyncNet's own file; the views name the file they are part of; both say the clock of
    # the clips they were trained on.
    assert "sync-light-asd.shared (default)" in out
    assert "[bundled; trained on audio 40 ms late]" in out
    assert "[bundled, part of sync_light_asd_gated.pt; trained on audio 40 ms late]" in out


def test_a_sync_model_is_refused_where_an_asd_model_is_needed():
    with pytest.raises(InputError, match="syncnet-v2 is an audio-visual sync model, not an active"):
        load_model("syncnet-v2", kind="asd")
    out = CliRunner().invoke(
        app, ["detect", str(DATA / "clips/vasp/ID1/014.mp4"), "--model", "syncnet-v2"]
    )
    assert out.exit_code == 2 and "choose one of light-asd" in out.output
