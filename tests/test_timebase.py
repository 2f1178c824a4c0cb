"""The shared timeline: one set of numbers, importable with nothing else installed."""

import numpy as np
from conftest import run_without

from syncasd import timebase
from syncasd.audio import mfcc


def test_the_timeline_numbers_agree():
    assert timebase.SAMPLES_PER_FRAME * timebase.MODEL_FPS == timebase.SAMPLE_RATE == 16000
    assert timebase.MS_PER_FRAME == 40.0


def test_mfcc_gives_rows_per_frame_rows_for_each_model_frame():
    frames = 25
    audio = np.random.default_rng(0).integers(-3000, 3000, frames * timebase.SAMPLES_PER_FRAME)
    # The last 25 ms window does not fit past the last full 10 ms hop: 4n − 1 rows.
    assert len(mfcc(audio.astype(np.int16))) == timebase.ROWS_PER_FRAME * frames - 1


def test_timebase_imports_nothing():
    code = (
        "import importlib.util\n"
        "spec = importlib.util.find_spec('syncasd.timebase')\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "print(module.SAMPLES_PER_FRAME)\n"
    )
    assert run_without(("numpy", "torch", "av", "scipy"), code) == "640"
