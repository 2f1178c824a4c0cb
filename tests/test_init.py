"""The package's top level: the pipeline's names load on first use, so training code imports
where only torch, numpy and OpenCV are installed (a GPU box)."""

import pytest
from conftest import run_without

import syncasd

BLOCKED = ("av", "scenedetect", "silero_vad", "python_speech_features")


def test_training_modules_import_without_the_video_and_mfcc_libraries():
    code = (
        "import syncasd, syncasd.cli, syncasd.train_sync, syncasd.data.syncpack\n"
        "from syncasd.train import TrainConfig, initial_model\n"
        "model = initial_model(TrainConfig.load('ic-syncnet-gpu'))\n"
        "print(type(model).__name__)\n"
    )
    assert run_without(BLOCKED, code) == "ICSyncNet"


def test_the_pipeline_names_resolve_on_first_use():
    from syncasd.pipeline import detect
    from syncasd.syncrun import sync

    assert syncasd.detect is detect and syncasd.sync is sync
    assert set(syncasd.__all__) >= {"Detector", "Result", "SyncAnalyzer"}
    assert all(getattr(syncasd, name) is not None for name in syncasd.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        syncasd.nope  # noqa: B018
