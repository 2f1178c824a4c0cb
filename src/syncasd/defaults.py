"""Defaults shared by the library and the command line (importing this loads nothing heavy)."""

from pathlib import Path

# The model `detect`, `eval` and `Detector` use unless told otherwise: ours, synchronization-
# aware, bundled in the package (so it runs offline): Light-ASD's AVA checkpoint, our sync-aware
# fine-tune of it and our banded-attention backend on its encoders, their geometric mean gated
# by ic-syncnet's lip-sync evidence around each frame (models/ensemble.MelGatedLightASD, since
# 7 Dec 2026; sync-light-asd-talknet-gated, the default 5-7 Dec, is the same with light-syncnet's
# gate).
DEFAULT_MODEL = "sync-light-asd-talknet-icgated"

# The sync backend of `sync`, `scan`, `detect --sync` and `eval sync-accuracy` unless told
# otherwise: sync-light-asd's offset rows and light-syncnet's summed in logit
# (models/ensemble.SyncPair). On the validation identities it finds the offset more often
# than either alone (sync accuracy 53.7 against 49.4 and 35.3 % at 5 frames).
DEFAULT_SYNC_MODEL = "sync-pair"

# `detect --align`'s, which measures one offset per video from its tracks' matrices: sync-pair.
# light-syncnet, 6× cheaper, found a moved soundtrack's offset more often (validation and test,
# `bench/align_check.py`) but also voted for a chance offset on 13 of 30 dubbed validation tracks
# (sync-pair: 0), and a dubbed face moved is a dubbed face one step from being called speaking.
DEFAULT_ALIGN_MODEL = "sync-pair"

# `scan`'s: light-syncnet alone, which runs each encoder once per window whatever the search
# range. On five-second clips it scans 70 clips per minute on 2 cores against sync-pair's 25.6
# (`bench/scan_bench.py`), and it places whole test tracks within ±1 frame as often (62 against
# 61 %; sync-pair is ahead on clips of 5–15 frames and on known shifts, 82.5 against 75 %).
DEFAULT_SCAN_MODEL = "light-syncnet"

# What `syncasd train` trains: ASD architectures (`train.py`) and sync-nets (`train_sync.py`).
TRAINABLE = ("light-asd", "lr-asd", "light-talknet", "light-talknet-band", "light-sync-talknet")
SYNC_TRAINABLE = ("ic-syncnet", "light-syncnet")

# What a folder of videos is taken to hold (`detect DIR`, `sync DIR`, `scan DIR`, the corpus).
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts"}
    | {".flv", ".wmv", ".3gp", ".ogv", ".mxf"}
)


def video_files(folder: Path) -> list[Path]:
    """The video files under `folder` (recursively), sorted. Hidden ones are left out, and
    all in hidden folders: a folder copied from a Mac holds a "._clip.mp4" of 4 KB (its
    resource fork) beside each clip.mp4, and ".git" or ".ipynb_checkpoints" no clip."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in VIDEO_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and p.is_file()
    )
