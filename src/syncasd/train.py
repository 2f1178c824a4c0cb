"""`syncasd train`: the seeds' recipes on Lightning, for the ASD models that expose embeddings.

A run is one YAML config (`configs/*.yaml` in this package, or a file of yours):

    model: light-asd            # registry architecture
    init: light-asd.ava         # registry checkpoint or a path: what fine-tuning starts from
    freeze: [visual-stem]       # frozen part (visual or visual-stem), run once per track
    data: {clips: [...], split: shared}
    samples: {...}              # syncasd.data.samples.SampleConfig
    loss: {beta: 1.0, misalign_beta: 1.0, visual_weight: 0.5}
    optim: {lr: 1.0e-4, lr_decay: 0.95}
    epochs: 8
    output: runs/sync-light-asd

Loss (per batch): CE(f_b(V, A), y) + β·CE(f_b(V_γ, A_φ(γ)), 0) + β_m·CE(f_b(V_γ, roll(A_γ)), 0)
+ Σ w_h·CE(head_h, y) over the model's auxiliary heads (Light-ASD: "V", 0.5).

Every epoch the validation identities are scored on their original tracks and on the seed's
unsynchronization test at 50 % (mismatched, misaligned); the checkpoint with the best mean of
the three mAPs is exported as a plain state dict (`OUTPUT/model.pt`, the registry's key layout),
its speaking logit shifted so that the best threshold on the validation frames (balanced
accuracy) becomes `detect`'s 0.5 (`decision_shift`).
`OUTPUT/last.ckpt` holds the full training state: a killed run started again resumes from it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import expit, logit

from .defaults import DEFAULT_MODEL, SYNC_TRAINABLE, TRAINABLE
from .errors import InputError, SyncASDError

log = logging.getLogger("syncasd")

CONFIG_DIR = Path(__file__).with_name("configs")
# Models with visual/audio embeddings and backend_logits.
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")


@dataclass
class DataConfig:
    clips: list[str] = field(default_factory=lambda: ["../shared/data/clips"])
    split: str = "shared"  # "shared" = the package's split of ../shared/data, or a JSON path
    corpus: str | None = None  # default: $SYNCASD_CACHE/corpus/<key of clips and split>
    # An AVA-ActiveSpeaker folder as TalkNet's preprocessing lays it out (syncasd.data.ava):
    # its train and val splits replace clips and split; default corpus: corpus/ava-<path key>.
    ava: str | None = None
    # IC-SyncNet: a sync pack folder (`data/syncpack.py`: mouths and log-mel only, 44 MB for
    # ../shared/data), built from the corpus on first use and read instead of it after that,
    # e.g. on a GPU machine that has the pack but not the corpus. Batches are cut on the device.
    pack: str | None = None


@dataclass
class LossConfig:
    beta: float = 1.0  # mismatched (swapped audio) pairs, the seed's β
    misalign_beta: float = 1.0  # misaligned (own audio shifted ≥ min_shift frames) pairs
    dub_beta: float = 0.0  # dubbed pairs (samples.dubbed: another voice timed to the lips)
    min_shift: int = 4
    visual_weight: float = 0.5  # auxiliary heads, by name
    audio_weight: float = 0.0
    offset_beta: float = 0.0  # offset ranking (losses.offset_ranking_loss) over ±offset_shift
    offset_shift: int = 6


@dataclass
class OptimConfig:
    lr: float = 1e-4
    lr_decay: float = 0.95  # per epoch
    weight_decay: float = 0.0


@dataclass
class SyncConfig:
    """What a sync-net's run sets beyond the shared options (IC-SyncNet, `train_sync.py`)."""

    easy: int = 15  # easy negatives per positive: other samples' positive audio in the batch
    easy_weight: float | None = None  # BBCE's w; None: proportional to the counts
    tune_epochs: int = 1  # the last epochs are the drop-and-tune phase (BatchNorm only)
    drop_rate: float | None = None  # IC-SyncNet's DropBlock rate while training; None: its own
    # LightSyncNet: weight of the cross-entropy over all offsets (`losses.offset_cross_entropy`)
    # beside BBCE; it alone asks offset ±1 to score below offset 0.
    offset_nce: float = 1.0
    # LightSyncNet with `samples.dubbed`: weight of BCE(σ(cos(v, a_dub) / τ), 0), the
    # segment's audio dubbed by a voice timed to it, at offset 0.
    dub_weight: float = 1.0


@dataclass
class TrainConfig:
    model: str = "light-asd"
    init: str | None = "light-asd.ava"
    # Load only init's tensors that match by name and shape (Light-ASD's encoders into
    # light-talknet); the others start fresh.
    init_partial: bool = False
    freeze: list[str] = field(default_factory=lambda: ["visual"])
    data: DataConfig = field(default_factory=DataConfig)
    samples: dict[str, Any] = field(default_factory=dict)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    epochs: int = 8
    steps_per_epoch: int | None = None  # default: about one pass over the training frames
    val_tracks: int | None = None  # cap on validation tracks (None: all)
    seed: int = 0
    output: str = "runs/train"
    # Lightning's precision: "32-true", or "bf16-mixed" to run the convolutions in bfloat16
    # on a GPU (weights and the exported model.pt stay float32).
    precision: str = "32-true"

    @classmethod
    def load(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
        path = resolve_config(path)
        import yaml

        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise InputError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(raw, dict):
            raise InputError(f"{path}: a config is a mapping of options")
        raw.update(overrides or {})
        return cls.from_dict(raw, str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "config") -> TrainConfig:
        nested = {
            "data": DataConfig,
            "loss": LossConfig,
            "optim": OptimConfig,
            "sync": SyncConfig,
        }
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise InputError(
                f"{where}: unknown option {unknown[0]!r}; known: {', '.join(sorted(names))}"
            )
        values = dict(raw)
        for key, kind in nested.items():
            if key in values:
                part = values[key] or {}
                known = {f.name for f in dataclasses.fields(kind)}
                bad = sorted(set(part) - known)
                if bad:
                    raise InputError(
                        f"{where}: unknown option {key}.{bad[0]}; known: {', '.join(sorted(known))}"
                    )
                values[key] = kind(**part)
        sample_fields = {f.name for f in dataclasses.fields(_sample_class(values.get("model")))}
        bad = sorted(set(values.get("samples") or {}) - sample_fields)
        if bad:
            raise InputError(
                f"{where}: unknown option samples.{bad[0]}; "
                f"known: {', '.join(sorted(sample_fields))}"
            )
        config = cls(**values)
        if config.model not in TRAINABLE + SYNC_TRAINABLE:
            raise InputError(
                f"{where}: `syncasd train` trains {', '.join(TRAINABLE + SYNC_TRAINABLE)} so "
                f"far, not {config.model!r}"
            )
        if config.model in SYNC_TRAINABLE:
            _check_sync_options(config, where)
        elif len(config.freeze) > 1 or not set(config.freeze) <= {"visual", "visual-stem"}:
            raise InputError(
                f"{where}: freeze takes one of 'visual' (the whole visual encoder) or "
                f"'visual-stem' (its first two blocks), got {config.freeze}"
            )
        if config.epochs < 1:
            raise InputError(f"{where}: epochs must be at least 1")
        if config.precision not in PRECISIONS:
            raise InputError(
                f"{where}: precision is one of {', '.join(PRECISIONS)}, not {config.precision!r}"
            )
        return config

    def sample_config(self):
        # YAML gives lists; every sequence option (SNR, gain and shift ranges) is a tuple.
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in self.samples.items()}
        return _sample_class(self.model)(**values)


def _check_sync_options(config: TrainConfig, where: str) -> None:
    """What a sync-net's run can ask: `freeze: [audio]` and `samples.lift_prob` cut their
    batches from a sync pack (IC-SyncNet's), and a frozen audio encoder hears no augmentation."""
    if config.sync.drop_rate is not None and config.model != "ic-syncnet":
        raise InputError(
            f"{where}: sync.drop_rate is IC-SyncNet's (DropBlock); {config.model} has none"
        )
    pack_only = []
    if config.freeze:
        if config.freeze != ["audio"] or config.model != "ic-syncnet":
            raise InputError(
                f"{where}: {config.model} trains whole (freeze: []); ic-syncnet with a data.pack "
                f"can also keep its audio encoder (freeze: [audio]), got {config.freeze}"
            )
        pack_only.append("freeze: [audio]")
    if config.samples.get("lift_prob"):
        pack_only.append("samples.lift_prob")
    if pack_only and not config.data.pack:
        raise InputError(f"{where}: {' and '.join(pack_only)} need a sync pack (data.pack)")
    sync_samples = config.sample_config()
    if config.freeze and (tuple(sync_samples.gain_db) != (0, 0) or sync_samples.white_noise_prob):
        raise InputError(
            f"{where}: freeze: [audio] computes the audio embeddings once, so the audio is not "
            "augmented: set samples.gain_db to [0, 0] and samples.white_noise_prob to 0"
        )


def _sample_class(model: str | None) -> type:
    """The sample options of a model: a sync-net's pairs or an ASD model's windows."""
    if model == "light-syncnet":
        from .data.syncpairs import SegmentSampleConfig

        return SegmentSampleConfig
    if model in SYNC_TRAINABLE:
        from .data.syncpairs import SyncSampleConfig

        return SyncSampleConfig
    from .data.samples import SampleConfig

    return SampleConfig


def resolve_config(path: str | Path) -> Path:
    """A config file, or the name of one shipped in `syncasd/configs` (with or without .yaml)."""
    path = Path(path)
    if path.is_file():
        return path
    for candidate in (CONFIG_DIR / path.name, CONFIG_DIR / f"{path.name}.yaml"):
        if candidate.is_file():
            return candidate
    shipped = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
    raise InputError(f"{path}: no such config file (shipped configs: {shipped})")


# --- data ---------------------------------------------------------------------------------


def _split(config: TrainConfig):
    from .data.splits import SHARED_SPLIT, Split

    file = SHARED_SPLIT if config.data.split == "shared" else Path(config.data.split)
    if not file.is_file():
        raise InputError(f"split file {file} not found")
    return Split.load(file), file


def corpus_location(config: TrainConfig) -> tuple[Path, list[Path]]:
    """Where the config's corpus lives (`data.corpus`, else $SYNCASD_CACHE/corpus/<key>) and
    the clips it is built from (none for an AVA tree)."""
    from .data.corpus import corpus_key
    from .data.splits import find_videos
    from .models.zoo import cache_dir

    if config.data.ava:
        from .data.ava import ava_corpus_key

        key, clips = ava_corpus_key(config.data.ava), []
    else:
        _, split_file = _split(config)
        missing = [c for c in config.data.clips if not Path(c).exists()]
        if missing:
            raise InputError(f"clip folder {missing[0]} not found (data.clips in the config)")
        clips = find_videos(config.data.clips)
        key = corpus_key(clips, split_file)
    root = Path(config.data.corpus) if config.data.corpus else cache_dir() / "corpus" / key
    return root, clips


def open_corpus(config: TrainConfig, progress: bool = True):
    """The corpus of the config's clips (or AVA tree), built on first use."""
    from .data.corpus import Corpus, build_corpus

    root, clips = corpus_location(config)
    if config.data.ava:
        from .data.ava import build_ava_corpus

        return build_ava_corpus(config.data.ava, root, progress=progress)
    if (root / "index.json").is_file():
        return Corpus(root)
    split, _ = _split(config)
    from .pipeline import Detector

    log.info("building the corpus of %d clips in %s", len(clips), root)
    # Crops do not depend on the model that scores along the way: take the local init weights
    # so that building needs no download.
    local = config.init is not None and Path(config.init).is_file()
    detector = Detector(
        keep_crops=True,
        allow_silent=True,
        model=config.model if local else DEFAULT_MODEL,
        weights=config.init if local else None,
    )
    return build_corpus(clips, root, split, detector=detector, progress=progress)


def visual_variants(
    model,
    corpus,
    seed: int,
    progress: bool = True,
    part: str = "visual",
    photometric: bool = False,
) -> list[np.ndarray]:
    """What a frozen visual front end gives for every frame, computed once per track.

    part "visual": the whole encoder's embeddings (N, 128), as cropped and as flipped/rotated/
    scaled once per track (the augmentation a frozen encoder can still see). part
    "visual-stem": the maps of its first two blocks (N, 64·14·14), as cropped only (3 GB of
    float16 for 100k frames), unless `photometric` asks for the augmented copy too. With
    `photometric`, the augmented copy is also dim, noisy or low-resolution
    (`samples.degrade_photometric`).
    """
    from .data.samples import augment_crops
    from .models.onnx import to_ort
    from .models.zoo import cache_dir

    # Named by the frozen weights alone: a fine-tuned start with the same frozen part reuses
    # the cache (3 GB for the stem).
    frozen = model.stem_modules if part == "visual-stem" else model.visual_modules
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        if key.startswith(frozen):
            digest.update(key.encode() + value.cpu().contiguous().numpy().tobytes())
    tag = digest.hexdigest()[:12]
    arch = model.__class__.__name__
    # ONNX Runtime runs the encoder about twice as fast as torch on a CPU.
    encoder = to_ort(_VisualFrontEnd(model, part), f"{arch}-{part}", cache_dir())
    name = f"{arch}-{tag}" if part == "visual" else f"{arch}-{part}-{tag}"
    kept = ("train", "val")  # test tracks are never trained or validated on
    plain = corpus.embeddings(name, lambda c: _encode(encoder, c), splits=kept, progress=progress)
    if part != "visual" and not photometric:
        return [plain]
    rng = np.random.default_rng(seed)
    augmented = corpus.embeddings(
        f"{name}-aug{seed}" + ("-photometric" if photometric else ""),
        lambda c: _encode(encoder, augment_crops(c, rng, photometric)),
        splits=kept,
        progress=progress,
    )
    return [plain, augmented]


class _VisualFrontEnd(torch.nn.Module):
    """The visual encoder (or its stem) alone behind the `frame_logits` API, for ONNX export."""

    def __init__(self, model: torch.nn.Module, part: str) -> None:
        super().__init__()
        self.model = model
        self.part = part

    def frame_logits(self, video: torch.Tensor, mfcc: torch.Tensor) -> torch.Tensor:
        if self.part == "visual-stem":
            return self.model.visual_stem(video)
        return self.model.visual_embeddings(video)


def _encode(encoder, crops: np.ndarray) -> np.ndarray:
    video = torch.from_numpy(np.array(crops, np.float32))[None]
    return encoder.frame_logits(video, torch.zeros(1, 4 * len(crops), 13))[0].numpy()


# --- Lightning ------------------------------------------------------------------------------


def _lightning():
    try:
        import lightning as L
    except ImportError:
        raise SyncASDError("training needs Lightning: pip install 'syncasd[train]'") from None
    return L


class _BatchIndices(torch.utils.data.Sampler):
    """(epoch, index) of this rank's batches; Lightning calls set_epoch before each epoch."""

    def __init__(self, steps: int, rank: int, world: int) -> None:
        self.steps, self.rank, self.world, self.epoch = steps, rank, world, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter([(self.epoch, i) for i in range(self.rank, self.steps, self.world)])

    def __len__(self) -> int:
        return len(range(self.rank, self.steps, self.world))


class _Batches(torch.utils.data.Dataset):
    def __init__(self, maker) -> None:
        self.maker = maker

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(v) for k, v in self.maker(*key).items()}


def initial_model(config: TrainConfig) -> torch.nn.Module:
    """The model a run starts from: fresh, a checkpoint file, a registry checkpoint, or (with
    `init_partial`) a fresh model with the tensors of `init` that fit it."""
    from .models import get_spec, load_model
    from .models.zoo import load_matching

    spec = get_spec(config.model)
    if config.init is None:
        return spec.builder()
    if config.init_partial:
        model = spec.builder()
        loaded, fresh = load_matching(model, config.init)
        log.info("init: %d tensors from %s, %d fresh", loaded, config.init, fresh)
        return model
    if Path(config.init).is_file():
        return load_model(config.model, weights=config.init)
    return load_model(config.init)  # a registry checkpoint name, e.g. light-asd.ava


def build_task(config: TrainConfig, progress: bool = True):
    """The LightningModule for a config, with its data (corpus, embeddings, batches)."""
    L = _lightning()
    from .data.samples import BatchMaker
    from .evaluate.tracks import pooled_map
    from .evaluate.unsync import UnsyncTest

    model = initial_model(config)
    corpus = open_corpus(config, progress)
    # "visual": the whole visual encoder frozen; "visual-stem": its first two blocks only.
    frozen = config.freeze[0] if config.freeze else None
    sampling = config.sample_config()
    variants = (
        visual_variants(model, corpus, config.seed, progress, frozen, sampling.photometric)
        if frozen
        else None
    )
    train_ids, val_ids = corpus.split("train"), corpus.split("val")
    if not train_ids or not val_ids:
        raise SyncASDError("the corpus needs tracks in both the train and the val split")
    maker = BatchMaker(corpus, train_ids, sampling, config.seed, variants)
    steps = config.steps_per_epoch or maker.steps_per_epoch()

    val_tracks = []
    for i in val_ids[: config.val_tracks] if config.val_tracks else val_ids:
        track = corpus.track(i)
        if frozen:  # the validation tracks carry the frozen embeddings in place of crops
            track = dataclasses.replace(
                track, crops=np.asarray(variants[0][corpus.tracks[i].frames])
            )
        val_tracks.append(track)
    unsync = UnsyncTest(val_tracks, shares=(50,), seed=config.seed)

    class ASDTask(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.frozen = frozen
            self.frozen_modules = {
                "visual": self.model.visual_modules,
                "visual-stem": getattr(self.model, "stem_modules", ()),
                None: (),
            }[frozen]
            for name, p in self.model.named_parameters():
                if name.startswith(self.frozen_modules):
                    p.requires_grad_(False)

        def train(self, mode: bool = True):
            super().train(mode)
            if self.frozen:  # frozen BatchNorms keep their running statistics
                for name, m in self.model.named_modules():
                    if name.startswith(self.frozen_modules):
                        m.eval()
            return self

        def _visual(self, visual: torch.Tensor) -> torch.Tensor:
            if self.frozen == "visual":
                return visual
            if self.frozen == "visual-stem":
                return self.model.visual_from_stem(visual.float())
            return self.model.visual_embeddings(visual.float())

        def training_step(self, batch, index):
            from .losses import (
                cross_modal_contrastive_loss,
                frame_cross_entropy,
                offset_ranking_loss,
            )

            visual = self._visual(batch["visual"])
            audio = self.model.audio_embeddings(batch["mfcc"])
            t = min(visual.shape[1], audio.shape[1])
            visual, audio, labels = visual[:, :t], audio[:, :t], batch["labels"][:, :t]
            misaligned = None
            if "mfcc_misaligned" in batch:  # samples.misaligned_shift: shifted in the waveform
                misaligned = self.model.audio_embeddings(batch["mfcc_misaligned"])[:, :t]
            dubbed = None
            if "mfcc_dubbed" in batch:  # samples.dubbed
                dubbed = self.model.audio_embeddings(batch["mfcc_dubbed"])[:, :t]
            g = torch.Generator().manual_seed(config.seed * 1_000_003 + self.global_step)
            out = cross_modal_contrastive_loss(
                self.model.backend_logits,
                visual,
                audio,
                labels,
                beta=config.loss.beta,
                misalign_beta=config.loss.misalign_beta,
                min_shift=config.loss.min_shift,
                generator=g,
                misaligned=misaligned,
                dub_beta=config.loss.dub_beta,
                dubbed=dubbed,
            )
            total = out.total
            ranking = None
            if config.loss.offset_beta > 0:
                ranking = offset_ranking_loss(
                    self.model.backend_logits, visual, audio, labels, config.loss.offset_shift
                )
                if ranking is not None:
                    total = total + config.loss.offset_beta * ranking
            weights = {"V": config.loss.visual_weight, "A": config.loss.audio_weight}
            # A visual-only head is told what the lips do, not whose voice is heard (turns).
            head_labels = {"V": batch.get("visual_labels", labels)[:, :t], "A": labels}
            for name, logits in self.model.auxiliary_logits(visual, audio).items():
                if weights.get(name, 0) > 0 and logits.requires_grad:
                    loss = frame_cross_entropy(logits, head_labels[name])
                    total = total + weights[name] * loss
            self.log_dict(
                {
                    "loss": total,
                    "asd": out.asd,
                    "mismatch": out.contrast,
                    "misalign": out.misalign if out.misalign is not None else 0.0,
                    "dub": out.dub if out.dub is not None else 0.0,
                    "offset": ranking if ranking is not None else 0.0,
                },
                prog_bar=True,
                batch_size=labels.shape[0],
            )
            return total

        def _score(self, visual: np.ndarray, audio: np.ndarray) -> np.ndarray:
            from .audio import mfcc as compute_mfcc

            n = len(visual)
            rows = compute_mfcc(audio)[: 4 * n]
            # A track's own audio gives 4n − 1 rows (the last window is partial): pad one.
            rows = np.concatenate([rows, np.zeros((4 * n - len(rows), 13))])
            v = torch.from_numpy(np.asarray(visual[:n])).float()[None].to(self.device)
            a = torch.from_numpy(rows[: 4 * n].astype(np.float32))[None].to(self.device)
            with torch.inference_mode():
                logits = self.model.backend_logits(self._visual(v), self.model.audio_embeddings(a))
            return logits.softmax(-1)[0, :, 1].float().cpu().numpy()

        def validation_scores(self) -> tuple[np.ndarray, np.ndarray]:
            """Labels and speaking probabilities of every validation frame (original tracks)."""
            was = self.training
            self.eval()
            scores = [self._score(t.crops, t.audio) for t in val_tracks]
            self.train(was)
            return np.concatenate([t.labels for t in val_tracks]), np.concatenate(scores)

        def validation_metrics(self) -> dict[str, float]:
            """mAP (%) on the validation identities: original tracks, and the unsync test at
            50 % mismatched and misaligned; val_score is their mean (what selects the best)."""
            was = self.training
            self.eval()
            result = unsync.run(self._score, config.model)
            original = pooled_map(
                [t.labels for t in val_tracks], [self._score(t.crops, t.audio) for t in val_tracks]
            )
            self.train(was)
            metrics = {
                "val_map": original,
                "val_map_mismatch50": result.maps["mismatch"][0],
                "val_map_misalign50": result.maps["misalign"][0],
            }
            metrics["val_score"] = float(np.mean(list(metrics.values())))
            return {k: float(v) for k, v in metrics.items()}

        def on_train_epoch_end(self) -> None:
            log_epoch(self)

        def configure_optimizers(self):
            return adam_per_epoch(
                [p for p in self.model.parameters() if p.requires_grad], config.optim
            )

    return ASDTask(), data_module(maker, steps), steps


def log_epoch(task) -> None:
    """End of an epoch: the task's validation metrics logged (checkpoints select on them)
    and printed by the first process."""
    metrics = task.validation_metrics()
    task.log_dict(metrics, prog_bar=True)
    if task.trainer.is_global_zero:
        text = ", ".join(f"{k} {v:.2f}" for k, v in metrics.items())
        print(f"epoch {task.current_epoch}: {text}", flush=True)


def adam_per_epoch(params, optim: OptimConfig) -> dict[str, Any]:
    """Adam with the lr multiplied by `optim.lr_decay` after each epoch (the seeds' schedule)."""
    opt = torch.optim.Adam(params, lr=optim.lr, weight_decay=optim.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=optim.lr_decay)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


def data_module(maker, steps: int):
    """Batches `(epoch, i)` of a batch maker, each rank taking every world-size-th one."""
    L = _lightning()

    class Data(L.LightningDataModule):
        def train_dataloader(self):
            trainer = self.trainer
            sampler = _BatchIndices(steps, trainer.global_rank, trainer.world_size)
            # One worker makes batches while the model trains, except for several CPU ranks:
            # they already fill the cores, and a worker forked after gloo's threads have
            # started can deadlock (the likely cause of a two-rank CI run that hung 600 s).
            cpu_ranks = trainer.world_size > 1 and trainer.strategy.root_device.type == "cpu"
            return torch.utils.data.DataLoader(
                _Batches(maker), sampler=sampler, batch_size=None, num_workers=0 if cpu_ranks else 1
            )

    return Data()


def export_weights(checkpoint: str | Path, out: str | Path) -> Path:
    """Lightning checkpoint → plain state dict in the registry's key layout (`model.` dropped)."""
    from .atomic import atomic_path

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    plain = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        torch.save(plain, tmp)
    return out


def prepare(config: TrainConfig, progress: bool = True) -> Path:
    """Build what a run reads, and stop; returns its folder: the sync pack of a `data.pack`
    config (the corpus too, if the pack must be built from it; e.g. on a CPU machine before
    carrying the pack to a GPU one), else the corpus."""
    if config.data.pack:
        from .models import get_spec
        from .train_sync import build_pack

        return build_pack(config, get_spec(config.model).builder().dims, progress)
    return Path(open_corpus(config, progress).root)


def train(
    config: TrainConfig,
    *,
    devices: int | str = 1,
    num_nodes: int = 1,
    strategy: str = "auto",
    accelerator: str = "cpu",
    progress: bool = True,
) -> Path:
    """Run (or resume) a config; returns the exported weights of the best validation epoch."""
    L = _lightning()
    from lightning.pytorch.callbacks import ModelCheckpoint

    torch.manual_seed(config.seed)
    output = Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
    sync_net = config.model in SYNC_TRAINABLE
    if sync_net:
        from .train_sync import build_sync_task

        task, data, steps = build_sync_task(config, progress)
    else:
        task, data, steps = build_task(config, progress)
    best = ModelCheckpoint(
        dirpath=output,
        filename="best",
        monitor="val_score",
        mode="max",
        save_on_train_epoch_end=True,
    )
    # Every epoch's end, whether or not it is the best: what a killed run resumes from.
    # (Lightning ≥ 2.6 writes `save_last` only when a top-k checkpoint is written, i.e. only
    # on improvement; a checkpoint without a monitor is written every epoch.)
    latest = ModelCheckpoint(
        dirpath=output,
        filename="last",
        save_top_k=1,
        save_on_train_epoch_end=True,
        enable_version_counter=False,
    )
    trainer = L.Trainer(
        max_epochs=config.epochs,
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        callbacks=[best, latest],
        default_root_dir=output,
        logger=L.pytorch.loggers.CSVLogger(output, name="logs"),
        enable_progress_bar=progress,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        use_distributed_sampler=False,
        log_every_n_steps=max(1, min(50, steps // 4)),
        enable_model_summary=False,
        precision=config.precision,
    )
    last = output / "last.ckpt"
    trainer.fit(task, datamodule=data, ckpt_path=str(last) if last.is_file() else None)
    if trainer.is_global_zero:
        source = best.best_model_path or str(last)
        exported = export_weights(source, output / "model.pt")
        if sync_net:  # σ(cos / τ) is calibrated by training itself (BBCE)
            return exported
        task.model.load_state_dict(torch.load(exported, weights_only=True))
        labels, scores = task.validation_scores()
        shift = decision_shift(labels, scores)
        log.info("calibrated: the best validation threshold %.3f moved to 0.5", expit(-shift))
        return calibrate_export(exported, shift)
    return output / "model.pt"


def decision_shift(labels: np.ndarray, scores: np.ndarray) -> float:
    """The logit shift that moves the best threshold on validation frames to 0.5: the one of
    highest balanced accuracy (TPR − FPR, Youden's J; F1 would follow the share of speaking
    frames, which differs from video to video).

    The contrastive terms pull every in-sync score down as long as the backend cannot yet
    tell sync apart (a third of the frames it sees are exchanged or shifted twins), so the
    trained model ranks well but is too shy at `detect`'s threshold of 0.5; one bias on the
    speaking logit fixes the operating point without changing any ranking (mAP)."""
    labels = np.asarray(labels, bool)
    scores = np.clip(np.asarray(scores, np.float64), 1e-6, 1 - 1e-6)
    if labels.all() or not labels.any():
        return 0.0
    best_j, best_t = -np.inf, 0.5
    # Candidate thresholds are scores themselves (a grid of quantiles, to bound the cost).
    grid = np.quantile(scores, np.linspace(0.01, 0.99, 197), method="inverted_cdf")
    for t in np.unique(grid):
        predicted = scores >= t
        j = predicted[labels].mean() - predicted[~labels].mean()
        if j > best_j:
            best_j, best_t = j, t
    return float(-logit(best_t))


def calibrate_export(weights: str | Path, shift: float) -> Path:
    """Add `shift` to the speaking logit of the main head (`lossAV.FC`) of exported weights."""
    from .atomic import atomic_path

    weights = Path(weights)
    state = torch.load(weights, weights_only=True)
    state["lossAV.FC.bias"] = state["lossAV.FC.bias"] + torch.tensor([0.0, shift])
    with atomic_path(weights) as tmp:
        torch.save(state, tmp)
    return weights
