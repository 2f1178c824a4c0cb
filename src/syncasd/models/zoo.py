"""Model registry: name → architecture, input spec, licence and published checkpoints.

`load_model("light-asd")` builds the architecture and loads its default checkpoint from the
cache (downloading it once, with sha256 check and a progress bar); `weights=PATH` loads a
local file instead and never touches the network.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import InputError, WeightsError
from .ensemble import (
    LipGatedLightASD,
    MelGatedLightASD,
    SyncGatedLightASD,
    SyncPair,
    TalkLipGatedLightASD,
    TripleGatedLightASD,
)
from .icsyncnet import ICSyncNet
from .light_asd import LightASD
from .light_syncnet import LightSyncNet
from .light_talknet import ATTENTION_BAND, LightTalkNet
from .lr_asd import LRASD
from .multitask import MultiTaskASD
from .rothnet import RothNet, SyncRothNet
from .syncnet import SyncNetV2
from .talknet import SyncTalkNet, TalkNet

# Our own trained weights ship inside the package, each with a model card beside it.
WEIGHTS_DIR = Path(__file__).with_name("weights")


@dataclass(frozen=True)
class Checkpoint:
    url: str | None  # None: bundled, the file is WEIGHTS_DIR / filename
    sha256: str | None  # None: published, but we have no verified digest; never downloaded
    filename: str
    description: str = ""
    # A view of a file that holds several models (our composed ones share their parts, so one
    # bundled file serves them all): (prefix in the model, prefix in the file) pairs; the
    # file's other tensors are left out. Empty: the whole file.
    subtrees: tuple[tuple[str, str], ...] = ()
    # The clock of the clips the weights were trained on: their audio lay this much later
    # than the lips of footage known to be in sync, so the weights call such footage that much
    # early. The sync backends feed them the audio as late (`offsets.shifted`), so that
    # offset 0 means in sync. 0: the trainers' footage was in sync, or we do not know.
    audio_lag_ms: float = 0.0
    # Other registry models' published weights that complete this one: (prefix in the model,
    # model name) pairs, e.g. IC-SyncNet's own file under `lips.` of a composed model.
    companions: tuple[tuple[str, str], ...] = ()

    @property
    def bundled(self) -> bool:
        return self.url is None

    def select(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """This checkpoint's tensors of the file's `state`, under the model's key names."""
        if not self.subtrees:
            return state
        return {
            ours + key[len(theirs) :]: value
            for ours, theirs in self.subtrees
            for key, value in state.items()
            if key.startswith(theirs)
        }


@dataclass(frozen=True)
class ModelSpec:
    """What a user needs to know to feed a model and trust its weights."""

    name: str
    builder: Callable[[], nn.Module]
    description: str
    license: str
    paper: str
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)
    default_checkpoint: str | None = None
    # Inputs of frame_logits: face crops (T, 112, 112) gray 0–255 and MFCC (4T, 13) at 25 fps
    # (with the 100-Hz log-mel beside them, (4T, 13 + 80), for a model that `reads_mel`).
    input_size: tuple[int, int] = (112, 112)
    fps: int = 25
    mfcc_rows_per_frame: int = 4
    sync_aware: bool = False
    # The face crops it reads (a key of `faces.crop.CROPS`): "asd", the gray centre 112×112 of
    # the recipe's crop; "syncnet", all 224×224 of it in colour.
    crop: str = "asd"
    # "asd": frame_logits(video, mfcc) as above, usable by the detector, ONNX export, the
    # benchmarks. "sync": an audio-visual offset model with its own inputs (syncnet.py).
    kind: str = "asd"


# The bundled file of the composed models, whose subtrees are our models (`asd.`: light-asd.ava,
# `sync.`: sync-light-asd, `lips.`: light-syncnet, `pair.`: the sync-light-asd of sync-pair,
# `talk.`: light-talknet-band without its visual encoder, which is `asd.`'s;
# `ensemble.write_gated_checkpoint`). IC-SyncNet, trained apart from them, has its own file.
BUNDLED_FILE = "sync_light_asd_gated.pt"
BUNDLED_SHA256 = "6d3e47d5815086a37bde978932a4c7c5d25e409c7c0786efe155ea9039cd0d82"


# ../shared/data's clips: their audio is about one frame late against the footage known to be
# in sync (GRID, LRS2, VoxCeleb2), by our models and by a model-free measure (docs/sync.md, "The
# training clips' clock"), so every model we trained on them reads in-sync footage ~1 frame early.
SHARED_DATA_AUDIO_LAG_MS = 40.0


def _bundled(
    description: str,
    *subtrees: tuple[str, str],
    companions: tuple[tuple[str, str], ...] = (),
) -> Checkpoint:
    return Checkpoint(
        None,
        BUNDLED_SHA256,
        BUNDLED_FILE,
        description,
        subtrees,
        SHARED_DATA_AUDIO_LAG_MS,
        companions,
    )


_SYNC_LIGHT_ASD_PAPER = (
    "method: Wuerkaixi et al., Rethinking Audio-visual Synchronization for Active Speaker "
    "Detection, MLSP 2022; architecture: Liao et al., CVPR 2023"
)
_LIGHT_ASD_URL = "https://github.com/Junhua-Liao/Light-ASD/raw/main/weight/"
_LR_ASD_URL = "https://github.com/Junhua-Liao/LR-ASD/raw/main/weight/"
# Google Drive ids from TaoRuijie/TalkNet-ASD: demoTalkNet.py (TalkSet) and utils/tools.py
# `download_pretrain_model_AVA` (AVA); both are fetched there with `gdown --id`.
_GDRIVE_URL = "https://drive.google.com/uc?id="
_TALKNET_PAPER = (
    "Tao et al., Is Someone Speaking? Exploring Long-term Temporal Features for Audio-visual "
    "Active Speaker Detection, ACM MM 2021"
)

_IC_SYNCNET_PAPER = "Park et al., Interpretable Convolutional SyncNet, 2024"

_OURS_LICENSE = (
    "MIT code and weights (Light-ASD's MIT AVA checkpoint and our models trained from it); "
    "trained on research-use footage, see the model card"
)


def _composed(
    name: str,
    builder: Callable[[], nn.Module],
    description: str,
    parts: str,
    *subtrees: tuple[str, str],
    paper: str = _SYNC_LIGHT_ASD_PAPER,
    companions: tuple[tuple[str, str], ...] = (),
) -> ModelSpec:
    """One of our composed models: sync-aware, a view (`subtrees`) of the bundled file,
    completed by `companions` (`Checkpoint.companions`)."""
    card = "(model card: syncasd/models/weights/sync_light_asd.md)"
    checkpoint = _bundled(f"{parts} composed {card}", *subtrees, companions=companions)
    return ModelSpec(
        name=name,
        builder=builder,
        description=description,
        license=_OURS_LICENSE,
        paper=paper,
        checkpoints={"shared": checkpoint},
        default_checkpoint="shared",
        sync_aware=True,
    )


REGISTRY: dict[str, ModelSpec] = {
    "sync-light-asd-talknet-icgated": _composed(
        "sync-light-asd-talknet-icgated",
        MelGatedLightASD,
        "Ours: ∛(light-asd.ava × sync-light-asd × light-talknet-band) × the lip-sync gate of "
        "ic-syncnet (log-mel): speaking, in sync with the voice, and following a "
        "conversation's turns (5.2 M params)",
        "light-asd.ava, sync-light-asd, light-talknet-band and ic-syncnet",
        ("asd.", "asd."),
        ("sync.", "sync."),
        ("talk.model.visualEncoder.", "asd.model.visualEncoder."),
        ("talk.", "talk."),
        paper=_SYNC_LIGHT_ASD_PAPER + "; " + _TALKNET_PAPER + "; " + _IC_SYNCNET_PAPER,
        companions=(("lips.", "ic-syncnet"),),
    ),
    "sync-light-asd-talknet-gated": _composed(
        "sync-light-asd-talknet-gated",
        TripleGatedLightASD,
        "Ours: ∛(light-asd.ava × sync-light-asd × light-talknet-band) × the lip-sync gate of "
        "light-syncnet: speaking, in sync with the voice, and following a conversation's "
        "turns; the default 5–7 Dec 2026 (4.5 M params)",
        "light-asd.ava, sync-light-asd, light-talknet-band and light-syncnet",
        ("asd.", "asd."),
        ("sync.", "sync."),
        ("talk.model.visualEncoder.", "asd.model.visualEncoder."),
        ("talk.", "talk."),
        ("lips.", "lips."),
        paper=_SYNC_LIGHT_ASD_PAPER + "; " + _TALKNET_PAPER,
    ),
    "sync-light-asd-gated": _composed(
        "sync-light-asd-gated",
        LipGatedLightASD,
        "Ours: sync-light-asd-ensemble × a lip-sync gate from light-syncnet (a face counts "
        "only where its lips are in sync with the voice); the default until 5 Dec 2026 "
        "(3.1 M params)",
        "light-asd.ava, sync-light-asd and light-syncnet",
        ("asd.", "asd."),
        ("sync.", "sync."),
        ("lips.", "lips."),
    ),
    "sync-light-talknet-gated": _composed(
        "sync-light-talknet-gated",
        TalkLipGatedLightASD,
        "Ours: sync-light-asd-gated with its sync half replaced by light-talknet-band "
        "(attention within ±1 s): follows a conversation's turns better, a little worse "
        "elsewhere (3.5 M params)",
        "light-asd.ava, light-talknet-band and light-syncnet",
        ("asd.", "asd."),
        ("sync.model.visualEncoder.", "asd.model.visualEncoder."),
        ("sync.", "talk."),
        ("lips.", "lips."),
        paper=_SYNC_LIGHT_ASD_PAPER + "; " + _TALKNET_PAPER,
    ),
    "sync-light-asd-ensemble": _composed(
        "sync-light-asd-ensemble",
        SyncGatedLightASD,
        "Ours: √(light-asd.ava × sync-light-asd) on one visual stem: speaking, and in sync "
        "with the voice; the default until 4 Dec 2026 (2.0 M params)",
        "light-asd.ava and sync-light-asd",
        ("asd.", "asd."),
        ("sync.", "sync."),
    ),
    "sync-light-asd": ModelSpec(
        name="sync-light-asd",
        builder=LightASD,
        description=(
            "Ours: Light-ASD trained to require lip-voice synchronization (the seeds' swapped- "
            "and shifted-audio negatives); half of the default sync backend (1.0 M params)"
        ),
        license=(
            "MIT code and weights (fine-tuned from Light-ASD's MIT AVA checkpoint); trained on "
            "research-use footage, see the model card"
        ),
        paper=_SYNC_LIGHT_ASD_PAPER,
        checkpoints={
            "shared": _bundled(
                "trained here on the train identities of ../shared/data "
                "(model card: syncasd/models/weights/sync_light_asd.md)",
                ("", "sync."),
            ),
        },
        default_checkpoint="shared",
        sync_aware=True,
    ),
    "light-asd": ModelSpec(
        name="light-asd",
        builder=LightASD,
        description="Light-ASD: light 2D+1D CNN encoders, additive fusion, BGRU (1.0 M params)",
        license="MIT (Junhua-Liao/Light-ASD)",
        paper="Liao et al., A Light Weight Model for Active Speaker Detection, CVPR 2023",
        checkpoints={
            "ava": Checkpoint(
                _LIGHT_ASD_URL + "pretrain_AVA_CVPR.model",
                "d44bc3ea7baa8e0946fa3921311714a630ed8b90a1928fab0dbe30d918909317",
                "light_asd_ava.model",
                "trained on AVA-ActiveSpeaker (94.1 mAP val)",
            ),
            "talkset": Checkpoint(
                _LIGHT_ASD_URL + "finetuning_TalkSet.model",
                "efc375833887eefa9d209dc92810e18519b04c3c73ea35a549f2a7f40b7d94d5",
                "light_asd_talkset.model",
                "AVA model fine-tuned on TalkSet (Columbia F1 95.5)",
            ),
        },
        default_checkpoint="ava",
    ),
    "lr-asd": ModelSpec(
        name="lr-asd",
        builder=LRASD,
        description="LR-ASD: light 2D+1D CNN encoders, gated fusion, two-GRU detector (0.84 M)",
        license="MIT (Junhua-Liao/LR-ASD)",
        paper=(
            "Liao et al., LR-ASD: Lightweight and Robust Network for Active Speaker Detection, "
            "IJCV 2025"
        ),
        checkpoints={
            "ava": Checkpoint(
                _LR_ASD_URL + "pretrain_AVA.model",
                "85e6c77fc981595234790d1e128ebb60352d37726b2445e0ef8891e2512fe9e3",
                "lr_asd_ava.model",
                "trained on AVA-ActiveSpeaker (94.5 mAP val)",
            ),
            "talkset": Checkpoint(
                _LR_ASD_URL + "finetuning_TalkSet.model",
                "6b4ef53694e874e96cf630198dc479c78aebb3993bbf166aee3d926dfe7d9342",
                "lr_asd_talkset.model",
                "AVA model fine-tuned on TalkSet",
            ),
        },
        default_checkpoint="ava",
    ),
    "talknet": ModelSpec(
        name="talknet",
        builder=TalkNet,
        description=(
            "TalkNet: 3D conv + ResNet18 / SE-ResNet34 temporal encoders, audio-visual cross- "
            "and self-attention (15.7 M params)"
        ),
        license="MIT (TaoRuijie/TalkNet-ASD)",
        paper=_TALKNET_PAPER,
        checkpoints={
            "talkset": Checkpoint(
                _GDRIVE_URL + "1AbN9fCf9IexMxEKXLQY2KYBlb-IhSEea",
                None,
                "pretrain_TalkSet.model",
                "trained on TalkSet, the demo's model (Columbia F1 96.3); sha256 not verified",
            ),
            "ava": Checkpoint(
                _GDRIVE_URL + "1NVIkksrD3zbxbDuDbPc_846bLfPSZcZm",
                None,
                "pretrain_AVA.model",
                "trained on AVA-ActiveSpeaker (92.3 mAP val); sha256 not verified",
            ),
        },
        default_checkpoint="talkset",
    ),
    "sync-talknet": ModelSpec(
        name="sync-talknet",
        builder=SyncTalkNet,
        description=(
            "Sync-TalkNet: TalkNet + sinusoidal positional encoding in the cross- and "
            "self-attention; no checkpoint of its own, pass TalkNet-architecture weights"
        ),
        license="MIT (TaoRuijie/TalkNet-ASD)",
        paper=(
            "Wuerkaixi et al., Rethinking Audio-visual Synchronization for Active Speaker "
            "Detection, MLSP 2022; " + _TALKNET_PAPER
        ),
    ),
    "light-talknet": ModelSpec(
        name="light-talknet",
        builder=LightTalkNet,
        description=(
            "TalkNet's cross- and self-attention backend on Light-ASD's encoders, no positional "
            "encoding: the TalkNet control of our Sync-TalkNet ablation; train it "
            "(2.0 M params)"
        ),
        license="MIT (this project)",
        paper=_TALKNET_PAPER,
    ),
    "light-talknet-band": ModelSpec(
        name="light-talknet-band",
        builder=lambda: LightTalkNet(band=ATTENTION_BAND),
        description=(
            f"light-talknet with each attention restricted to ±{ATTENTION_BAND} frames of the "
            "query, so another turn's speech cannot vote on a frame; train it (2.0 M params)"
        ),
        license="MIT (this project)",
        paper=_TALKNET_PAPER,
    ),
    "light-sync-talknet": ModelSpec(
        name="light-sync-talknet",
        builder=lambda: LightTalkNet(positional_encoding=True),
        description=(
            "light-talknet with Sync-TalkNet's sinusoidal positional encoding in both "
            "attention stages; train it (2.0 M params)"
        ),
        license="MIT (this project)",
        paper=(
            "Wuerkaixi et al., Rethinking Audio-visual Synchronization for Active Speaker "
            "Detection, MLSP 2022; " + _TALKNET_PAPER
        ),
    ),
    "rothnet": ModelSpec(
        name="rothnet",
        builder=RothNet,
        description=(
            "RothNet: 11-frame window (stacked gray crops + 44 MFCC rows) → visual/audio "
            "encoders → concat → centre-frame classifier, slid over the track (0.81 M params)"
        ),
        license="MIT (this project; no upstream code or weights)",
        paper=(
            "Roth et al., AVA-ActiveSpeaker, arXiv:1901.01342; as described in Wuerkaixi et al., "
            "MLSP 2022"
        ),
    ),
    "sync-rothnet": ModelSpec(
        name="sync-rothnet",
        builder=SyncRothNet,
        description=(
            "Sync-RothNet: RothNet trained with cross-modal contrastive learning (swapped-audio "
            "negatives, β = 1); same weights layout as rothnet"
        ),
        license="MIT (this project)",
        paper=(
            "Wuerkaixi et al., Rethinking Audio-visual Synchronization for Active Speaker "
            "Detection, MLSP 2022"
        ),
    ),
    "multitask-asd": ModelSpec(
        name="multitask-asd",
        builder=MultiTaskASD,
        description=(
            "Multi-task ASD: 3D-ResNet18 + VGG-M audio (128-d each) → 2-layer BiGRU (256) → "
            "3 FC; CE + Euclidean contrastive loss (18.6 M params)"
        ),
        license="MIT (this project)",
        paper=(
            "Zhang et al., Multi-Task Learning for Audio-Visual Active Speaker Detection, "
            "ActivityNet Challenge 2019"
        ),
    ),
    "ic-syncnet": ModelSpec(
        name="ic-syncnet",
        builder=lambda: ICSyncNet.from_config("cpu"),
        description=(
            "IC-SyncNet, CPU size: a sync model, not an ASD model: five gray 48×96 mouths and "
            "a 0.4 s log-mel window on the unit sphere, p(sync) = σ(cos / τ) (1.7 M params)"
        ),
        license=(
            "MIT code and weights (trained from scratch here); trained on research-use footage, "
            "see the model card"
        ),
        paper=_IC_SYNCNET_PAPER,
        checkpoints={
            "shared": Checkpoint(
                None,
                "b54605a55bc20fd0f9d35487dff89c9ca5c509bf5bed7217256aa5b8f5874be2",
                "ic_syncnet.pt",
                "trained here from scratch on the train identities of ../shared/data "
                "(model card: syncasd/models/weights/ic_syncnet.md)",
                audio_lag_ms=SHARED_DATA_AUDIO_LAG_MS,
            ),
        },
        default_checkpoint="shared",
        input_size=(48, 96),  # the lower half of the gray 112 × 112 crop, resized
        kind="sync",
    ),
    "light-syncnet": ModelSpec(
        name="light-syncnet",
        builder=LightSyncNet,
        description=(
            "Ours: a sync model, not an ASD model: Light-ASD's encoders (lips: the lower half "
            "of the gray crop) with 5-frame heads, per-frame embeddings on the unit sphere, "
            "p(sync) = σ(cos / τ) at every offset (1.0 M params)"
        ),
        license=(
            "MIT code and weights (encoders fine-tuned from sync-light-asd); trained on "
            "research-use footage, see the model card"
        ),
        paper=(
            "objective: Park et al., Interpretable Convolutional SyncNet, 2024 (BBCE) and "
            "InfoNCE over offsets; encoders: Liao et al., CVPR 2023"
        ),
        checkpoints={
            "shared": _bundled(
                "trained here on the train identities of ../shared/data "
                "(model card: syncasd/models/weights/light_syncnet.md)",
                ("", "lips."),
            ),
        },
        default_checkpoint="shared",
        kind="sync",
    ),
    "sync-pair": ModelSpec(
        name="sync-pair",
        builder=SyncPair,
        description=(
            "Ours, the default sync backend: sync-light-asd's offset rows and light-syncnet's "
            "summed in logit (2.0 M params)"
        ),
        license="MIT code and weights; trained on research-use footage, see the model cards",
        paper=_SYNC_LIGHT_ASD_PAPER,
        checkpoints={
            "shared": _bundled(
                "sync-light-asd's sync branch (stage 3 + 3 sync epochs) and light-syncnet "
                "composed (model cards: syncasd/models/weights/light_syncnet.md, "
                "sync_light_asd.md)",
                ("asd.", "pair."),
                ("lips.", "lips."),
            ),
        },
        default_checkpoint="shared",
        kind="sync",
    ),
    "syncnet-v2": ModelSpec(
        name="syncnet-v2",
        builder=SyncNetV2,
        description=(
            "SyncNet v2: a sync model, not an ASD model: 5-frame face / 0.2 s MFCC embeddings "
            "whose distances give the audio-visual offset and sync confidence (13.6 M params)"
        ),
        license="MIT code (joonson/syncnet_python); weights distributed by Oxford VGG",
        paper="Chung & Zisserman, Out of time: automated lip sync in the wild, ACCV-W 2016",
        checkpoints={
            "vgg": Checkpoint(
                "http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model",
                None,
                "syncnet_v2.model",
                "syncnet_python's published weights; sha256 not verified, pass --weights PATH",
            ),
        },
        default_checkpoint="vgg",
        input_size=(224, 224),  # full face, BGR, not the ASD models' gray 112×112 crop
        crop="syncnet",
        kind="sync",
    ),
}


def available_models(kind: str | None = "asd") -> list[str]:
    """Registered names of one kind: the ASD models by default (None: every model)."""
    return sorted(name for name, spec in REGISTRY.items() if kind is None or spec.kind == kind)


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name.split(".")[0]]
    except KeyError:
        raise WeightsError(
            f"unknown model {name!r}; available: {', '.join(available_models(None))}"
        ) from None


def cache_dir() -> Path:
    """Where downloaded checkpoints live: $SYNCASD_CACHE, else ~/.cache/syncasd."""
    root = os.environ.get("SYNCASD_CACHE") or Path.home() / ".cache" / "syncasd"
    return Path(root)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _resolve(name: str) -> tuple[ModelSpec, Checkpoint]:
    spec = get_spec(name)
    tag = name.split(".", 1)[1] if "." in name else spec.default_checkpoint
    if not spec.checkpoints:
        raise WeightsError(
            f"{spec.name} has no published weights: train it (`syncasd train`) and pass "
            "--weights PATH"
        )
    if tag is None or tag not in spec.checkpoints:
        known = ", ".join(f"{spec.name}.{t}" for t in spec.checkpoints)
        raise WeightsError(f"no published checkpoint {name!r}; known: {known}")
    return spec, spec.checkpoints[tag]


def audio_lag_ms(name: str, weights: str | Path | None = None) -> float:
    """`Checkpoint.audio_lag_ms` of the weights `load_model(name, weights)` loads: the published
    checkpoint's, or that of a local file with its sha256; 0 for any other file (its clock is
    unknown) and for a model without published weights."""
    try:
        _, ckpt = _resolve(name)
    except WeightsError:  # no published checkpoint of that name: `load_model` says so
        return 0.0
    if weights is None:
        return ckpt.audio_lag_ms
    path = Path(weights)
    if ckpt.audio_lag_ms and path.is_file() and ckpt.sha256 == sha256_file(path):
        return ckpt.audio_lag_ms
    return 0.0


def download(name: str, progress: bool = True) -> Path:
    """Fetch a published checkpoint into the cache (once) and verify its sha256; a bundled
    one is the package's own file (checked the same way)."""
    _, ckpt = _resolve(name)
    if ckpt.bundled:
        path = WEIGHTS_DIR / ckpt.filename
        if not path.is_file() or (ckpt.sha256 and sha256_file(path) != ckpt.sha256):
            raise WeightsError(
                f"{path}: the bundled {name} weights are missing or damaged; reinstall syncasd"
            )
        return path
    if ckpt.sha256 is None:
        raise WeightsError(
            f"{name}: no verified sha256 for {ckpt.filename}, so it is not downloaded "
            f"automatically; fetch it yourself from {ckpt.url} and pass --weights PATH"
        )
    path = cache_dir() / ckpt.filename
    if path.exists():
        if sha256_file(path) == ckpt.sha256:
            return path
        raise WeightsError(
            f"{path} is not the published {name} checkpoint (sha256 differs); delete it and "
            f"run `syncasd download {name}`, or pass --weights PATH"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    try:
        with urllib.request.urlopen(ckpt.url, timeout=30) as response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            from tqdm import tqdm

            with tqdm(
                total=total or None,
                unit="B",
                unit_scale=True,
                desc=ckpt.filename,
                disable=not progress,
            ) as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    bar.update(len(block))
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise WeightsError(
            f"cannot download {ckpt.url} ({e}); place the file {ckpt.filename} "
            f"(sha256 {ckpt.sha256[:12]}…) at {path}, or pass --weights PATH"
        ) from None
    digest = sha256_file(tmp)
    if digest != ckpt.sha256:
        tmp.unlink(missing_ok=True)
        raise WeightsError(f"{ckpt.url}: sha256 {digest} does not match {ckpt.sha256}")
    os.replace(tmp, path)
    return path


def _published(name: str) -> tuple[Path, dict[str, torch.Tensor]]:
    """A published checkpoint's file (`download`) and its state dict: the whole file, or the
    subtrees of it that are this model's."""
    _, ckpt = _resolve(name)
    path = download(name)
    return path, with_companions(ckpt, ckpt.select(load_state_dict(path)))


def with_companions(ckpt: Checkpoint, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` completed by the published weights of `ckpt.companions` under their prefixes
    (those it lacks)."""
    for prefix, name in ckpt.companions:
        if not any(key.startswith(prefix) for key in state):
            state = state | {prefix + k: v for k, v in _published(name)[1].items()}
    return state


def _own_part(
    spec: ModelSpec, state: dict[str, torch.Tensor], keys: Iterable[str]
) -> dict[str, torch.Tensor]:
    """A file laid out as the bundled one (`ensemble.write_gated_checkpoint` writes it: all
    our composed models in one) passed as weights: this model's subtrees of it, as the
    bundled checkpoint takes them (completed by its companions). Any other file, and one
    with exactly the model's `keys` (its own state dict), as it is."""
    bundled = spec.checkpoints.get(spec.default_checkpoint or "")
    if bundled is None or not bundled.bundled or not bundled.subtrees or state.keys() == set(keys):
        return state
    theirs = [prefix for _, prefix in bundled.subtrees if prefix]
    if theirs and all(any(k.startswith(p) for k in state) for p in theirs):
        return with_companions(bundled, bundled.select(state))
    return state


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a plain state dict safely (weights_only); WeightsError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: checkpoint file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or non-torch files
        raise WeightsError(
            f"{path}: not a readable PyTorch checkpoint ({type(e).__name__})"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: not a state dict of tensors")
    return state


_KIND_NAMES = {"asd": "an active speaker detection model", "sync": "an audio-visual sync model"}


def load_matching(model: nn.Module, weights: str | Path) -> tuple[int, int]:
    """Load into `model` the layers of `weights` (a checkpoint path or a registry name) whose
    tensors all match by name and shape, e.g. Light-ASD's encoders into a model with another
    backend; the rest keep their fresh initialisation. A layer loads whole or not at all (a
    128-wide head's bias fits a 256-wide head, its weight does not). Returns (loaded, fresh)
    tensor counts."""
    path = Path(weights)
    state = load_state_dict(path) if path.is_file() else _published(str(weights))[1]
    expected = model.state_dict()
    layers: dict[str, list[str]] = {}
    for key in expected:
        layers.setdefault(key.rpartition(".")[0], []).append(key)
    matching = {
        key: state[key]
        for keys in layers.values()
        if all(k in state and state[k].shape == expected[k].shape for k in keys)
        for key in keys
    }
    if not matching:
        raise WeightsError(f"{weights}: no tensor of it fits {type(model).__name__}")
    model.load_state_dict(matching, strict=False)
    return len(matching), len(expected) - len(matching)


def _models_fitting(state: dict[str, torch.Tensor], kind: str) -> list[str]:
    """Registered models of `kind` whose key tree and shapes `state` matches (for a hint)."""
    fits, tried = [], {}
    for name, spec in REGISTRY.items():
        if spec.kind != kind:
            continue
        if spec.builder not in tried:
            expected = spec.builder().state_dict()
            tried[spec.builder] = expected.keys() == state.keys() and all(
                v.shape == state[k].shape for k, v in expected.items()
            )
        if tried[spec.builder]:
            fits.append(name)
    return fits


def load_model(
    name: str,
    weights: str | Path | None = None,
    device: str = "cpu",
    kind: str | None = None,
) -> nn.Module:
    """Build `name` (e.g. "light-asd" or "light-asd.talkset") with its weights, in eval mode.

    `weights` is a local checkpoint path; without it the published checkpoint is taken from
    the cache or downloaded. Keys must match exactly (the original key tree). `kind` ("asd",
    "sync"): refuse a model of another kind with one line naming the right ones.
    """
    spec = get_spec(name)
    if kind is not None and spec.kind != kind:
        raise InputError(
            f"{spec.name} is {_KIND_NAMES[spec.kind]}, not {_KIND_NAMES[kind]}; "
            f"choose one of {', '.join(available_models(kind))}"
        )
    model = spec.builder()
    expected = model.state_dict()
    if weights is None:
        path, state = _published(name)  # verifies the sha256 of a cached file too
    else:
        path = Path(weights)
        state = _own_part(spec, load_state_dict(path), expected)
    # Compare key trees and shapes first: torch's own errors are long and not actionable.
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        example = (missing or unexpected)[0]
        fits = _models_fitting(state, spec.kind)
        hint = f"; it fits {', '.join(fits)}: pass --model NAME" if fits else ""
        raise WeightsError(
            f"{path}: not a {spec.name} checkpoint ({len(missing)} missing, {len(unexpected)} "
            f"unexpected keys, e.g. {example!r}){hint}"
        )
    wrong = [k for k, v in expected.items() if v.shape != state[k].shape]
    if wrong:
        k = wrong[0]
        raise WeightsError(
            f"{path}: not a {spec.name} checkpoint: {len(wrong)} tensors have other shapes, "
            f"e.g. {k} {tuple(state[k].shape)} instead of {tuple(expected[k].shape)}"
        )
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()
