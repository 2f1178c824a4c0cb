"""`syncasd train ic-syncnet | light-syncnet`: sync-nets on the same corpus as the ASD models.

IC-SyncNet (Park et al. 2024): each batch holds `samples.batch` five-image mouth windows of
speaking frames with their audio window at offset 0, `samples.hard` windows of the same track
at other offsets (hard negatives) and, as easy negatives, `sync.easy` of the other samples'
positive audio (`data/syncpairs.SyncBatchMaker`). Loss: BBCE (paper eq. 8,
`losses.bbce_loss`). The last `sync.tune_epochs` epochs are the paper's drop-and-tune phase:
DropBlock off, only the BatchNorm layers train.

LightSyncNet (`models/light_syncnet.py`): each batch holds lip segments with the audio around
them (`data/syncpairs.SegmentBatchMaker`); every speaking frame is an anchor scored against its
own audio at every offset −K … K that lies inside the track. Loss: BBCE with the offsets
|k| ≥ `samples.min_shift` as hard negatives and the other segments' audio at the same frame as
easy ones, plus `sync.offset_nce` × the cross-entropy over all offsets
(`losses.offset_cross_entropy`), which alone asks offset ±1 to score below offset 0.

With `data.pack` (IC-SyncNet only), the run reads a sync pack instead of the corpus
(`data/syncpack.py`): the loader only counts steps, and each training step cuts its batch on
the training device (`PackSampler`), so a GPU is not held back by data loading; validation
then scores every validation track of the pack (`val_tracks` does not apply). There,
`freeze: [audio]` fine-tunes the visual encoder alone into the audio encoder's space: the audio
encoder and the temperature stay as `init` left them, and their embeddings of every training
window are computed once (`syncpack.audio_embedding_table`), which makes a step on a CPU about
fourteen times cheaper (the audio encoder runs 1 + hard times per positive).

Every epoch scores the validation identities by the paper's sync accuracy (±15 frames, correct
within ±1, clips of 5 and 11 frames); the best epoch by the 5-frame accuracy is exported as a
plain state dict (`OUTPUT/model.pt`, loadable as `load_model(MODEL, weights=...)`).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.nn import functional as F

from .errors import SyncASDError
from .losses import bbce_loss, offset_cross_entropy

log = logging.getLogger("syncasd")


def _easy_indices(b: int, n: int, seed: int, device: torch.device | None = None) -> torch.Tensor:
    """(b, n) indices of other samples: (i + 1 + r) mod b with r in 0..b-2 is never i."""
    g = torch.Generator().manual_seed(seed)
    rows = (torch.arange(b)[:, None] + 1 + torch.rand(b, n, generator=g).mul(b - 1).long()) % b
    return rows.to(device)


def window_loss(model, batch, sync, seed: int) -> dict[str, torch.Tensor]:
    """IC-SyncNet's BBCE on a `SyncBatchMaker` or `PackSampler` batch ("audio" instead of
    "mel": precomputed embeddings); "loss" and what the progress bar shows."""
    mouths = batch["mouths"].float()
    visual = model.visual_embeddings(mouths)
    if "audio" in batch:  # a frozen audio encoder's precomputed embeddings
        audio = batch["audio"]
        b = len(audio)
    else:
        mel = batch["mel"]
        b, n = mel.shape[:2]
        audio = model.audio_embeddings(mel.flatten(0, 1)).view(b, n, -1)
    logits = model.similarity_logits(visual, audio)  # (B, 1 + hard)
    easy = None
    if sync.easy > 0 and b > 1:
        # Easy negatives: other samples' in-sync audio (other tracks, mostly).
        easy = model.similarity_logits(
            visual, audio[:, 0][_easy_indices(b, min(sync.easy, b - 1), seed, audio.device)]
        )
    loss = bbce_loss(logits[:, 0], logits[:, 1:], easy, sync.easy_weight)
    with torch.no_grad():
        hard_acc = (logits[:, :1] > logits[:, 1:]).float().mean()
    return {"loss": loss, "hard_acc": hard_acc}


def segment_loss(model, batch, sync, min_shift: int, seed: int) -> dict[str, torch.Tensor]:
    """LightSyncNet's BBCE + offset cross-entropy on a `SegmentBatchMaker` batch."""
    valid, speaking = batch["valid"], batch["speaking"]
    b, rows, s = valid.shape
    k = rows // 2
    visual = model.visual_embeddings(batch["crops"].float())  # (B, S, D)
    audio = model.audio_embeddings(batch["mfcc"])  # (B, S + 2K + 2M, D)
    margin = (audio.shape[1] - s - 2 * k) // 2
    audio = audio[:, margin : margin + s + 2 * k]
    logits = model.offset_logits(visual, audio)  # (B, 2K + 1, S)
    z = logits.permute(0, 2, 1)[speaking]  # (N, 2K + 1): every speaking frame an anchor
    ok = valid.permute(0, 2, 1)[speaking]
    hard = torch.arange(-k, k + 1, device=z.device).abs() >= min_shift
    easy = None
    if sync.easy > 0 and b > 1:
        # The other segments' audio at the same frame, offset 0 (other tracks, mostly).
        others = _easy_indices(b, min(sync.easy, b - 1), seed, audio.device)  # (B, E)
        heard = audio[:, k : k + s][others]  # (B, E, S, D)
        easy = torch.einsum("bsd,besd->bse", visual, heard) / model.temperature
        easy = easy[speaking]  # (N, E)
    loss = bbce_loss(z[:, k], z[:, hard], easy, sync.easy_weight, hard_mask=ok[:, hard])
    dub = torch.zeros((), device=z.device)
    if "mfcc_dubbed" in batch:  # samples.dubbed: another voice timed to the lips, offset 0
        dubbed = model.audio_embeddings(batch["mfcc_dubbed"])[:, margin + k : margin + k + s]
        z_dub = ((visual * dubbed).sum(-1) / model.temperature)[speaking]  # (N,)
        dub = F.softplus(z_dub).mean()  # −log(1 − σ(z)): not in sync
        loss = loss + sync.dub_weight * dub
    nce = offset_cross_entropy(z, ok)
    with torch.no_grad():
        offset_acc = (z.masked_fill(~ok, float("-inf")).argmax(dim=1) == k).float().mean()
    return {
        "loss": loss + sync.offset_nce * nce if sync.offset_nce else loss,
        "bbce": loss,
        "nce": nce,
        "dub": dub,
        "offset_acc": offset_acc,
    }


def track_offsets(backend, corpus, ids: list[int], progress: bool = False) -> dict[int, int]:
    """Each speaking track's own audio-visual offset by a sync backend (`offsets.py`): the
    argmax over −K … K (K = `backend.max_offset`) of its mean sync logit over the speaking
    frames whose audio at that offset lies inside the track (the corpus keeps only the track's
    audio). Offsets with fewer than five such frames are not candidates; tracks without a
    speaking frame are left out."""
    from tqdm import tqdm

    from .syncmap import masked_offset

    k = int(backend.max_offset)
    found = {}
    for i in tqdm(ids, desc="track offsets", disable=not progress):
        if corpus.tracks[i].negative:
            continue
        track = corpus.track(i)
        labels = np.asarray(track.labels, bool)
        if not labels.any():
            continue
        matrix = backend.matrix(np.array(track.crops), backend.features(np.asarray(track.audio)), 0)
        n = len(labels)
        heard = np.arange(n)[None, :] + np.arange(-k, k + 1)[:, None]
        offset = masked_offset(matrix, (heard >= 0) & (heard < n) & labels[None, :], 5)
        if offset is not None:
            found[i] = offset
    return found


def _curated(model, corpus, ids: list[int], samples, config, progress: bool) -> list[int]:
    """The training tracks whose own offset is within `samples.max_track_offset`; every
    track's offset is written to OUTPUT/track_offsets.json (computed once, then read)."""
    import json
    from pathlib import Path

    from .atomic import atomic_write

    path = Path(config.output) / "track_offsets.json"
    if path.is_file():
        found = {int(k): v for k, v in json.loads(path.read_text())["offsets"].items()}
    else:
        from .offsets import LightSyncOffsets

        was = model.training
        backend = LightSyncOffsets(model.eval(), samples.max_shift)
        found = track_offsets(backend, corpus, ids, progress)
        model.train(was)
        text = json.dumps({"init": config.init, "offsets": found}, indent=0)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as f:
            f.write(text)
    kept = [i for i in ids if abs(found.get(i, 0)) <= samples.max_track_offset]
    log.info(
        "curation: %d of %d training tracks within ±%d frames of their own audio",
        len(kept),
        len(ids),
        samples.max_track_offset,
    )
    return kept


class _StepKeys:
    """The data of a pack run: the batch is cut on the device in the training step, so the
    loader only counts steps."""

    def __call__(self, epoch: int, index: int) -> dict[str, np.ndarray]:
        return {"step": np.array([epoch, index])}


def build_pack(config, dims, progress: bool = True):
    """The folder of the config's sync pack, built from the corpus and saved if missing."""
    from pathlib import Path

    from .data.syncpack import build_sync_pack
    from .train import open_corpus

    folder = Path(config.data.pack)
    if not (folder / "pack.json").is_file():
        corpus = open_corpus(config, progress)
        log.info("building the sync pack in %s", folder)
        build_sync_pack(corpus, dims, progress=progress).save(folder)
    return folder


def open_pack(config, dims, progress: bool = True):
    """The config's sync pack, read from its folder even right after building it, so a run
    trains on the decoded mouths whichever way the pack came."""
    from .data.syncpack import SyncPack

    return SyncPack.load(build_pack(config, dims, progress))


def build_sync_task(config, progress: bool = True):
    """The LightningModule of a sync-net config, with its data and steps per epoch."""
    from .data.syncpack import PackSampler, audio_embedding_table, pack_sync_accuracy
    from .data.syncpairs import SegmentBatchMaker, SyncBatchMaker
    from .models.icsyncnet import IMAGES
    from .models.light_syncnet import LightSyncNet
    from .offsets import ICSyncOffsets, LightSyncOffsets
    from .train import (
        _lightning,
        adam_per_epoch,
        data_module,
        initial_model,
        log_epoch,
        open_corpus,
    )

    L = _lightning()
    model = initial_model(config)
    segments = isinstance(model, LightSyncNet)
    samples = config.sample_config()
    sync = config.sync
    tunes = hasattr(model, "drop_and_tune") and sync.tune_epochs > 0
    if sync.drop_rate is not None:
        model.set_drop_rate(sync.drop_rate)
    frozen_audio = config.freeze == ["audio"]
    pack = None
    if config.data.pack:
        if segments:
            raise SyncASDError(
                "data.pack holds IC-SyncNet's mouths; light-syncnet reads the corpus"
            )
        pack = open_pack(config, model.dims, progress)
        maker, val_tracks, backend = _StepKeys(), [], ICSyncOffsets
        if frozen_audio:
            for p in (*model.audio.parameters(), model.log_temperature):
                p.requires_grad_(False)
        windows = len(PackSampler(pack, "train", samples))  # on the CPU: the arrays, not copies
        steps = config.steps_per_epoch or max(1, windows // samples.batch)
    else:
        corpus = open_corpus(config, progress)
        train_ids, val_ids = corpus.split("train"), corpus.split("val")
        if not train_ids or not val_ids:
            raise SyncASDError("the corpus needs tracks in both the train and the val split")
        if segments:
            if samples.max_track_offset is not None:
                train_ids = _curated(model, corpus, train_ids, samples, config, progress)
            maker = SegmentBatchMaker(corpus, train_ids, samples, config.seed)
            backend = LightSyncOffsets
        else:
            maker = SyncBatchMaker(corpus, train_ids, model.dims, samples, config.seed)
            backend = ICSyncOffsets
        steps = config.steps_per_epoch or maker.steps_per_epoch()
        val_tracks = [
            corpus.track(i)
            for i in val_ids
            if not corpus.tracks[i].negative and corpus.tracks[i].length >= 2 * IMAGES
        ][: config.val_tracks]

    class SyncTask(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.model.train()
            self.sampler = None

        def on_fit_start(self) -> None:
            if pack is not None:  # the pack moves to the training device once
                table = audio_embedding_table(self.model, pack) if frozen_audio else None
                self.sampler = PackSampler(pack, "train", samples, self.device, table)

        def on_train_epoch_start(self) -> None:
            if tunes and self.current_epoch >= config.epochs - sync.tune_epochs:
                self.model.drop_and_tune()

        def training_step(self, batch, index):
            seed = config.seed * 1_000_003 + self.global_step
            if self.sampler is not None:
                generator = torch.Generator(self.device).manual_seed(seed)
                batch = self.sampler(generator)
            if segments:
                out = segment_loss(self.model, batch, sync, samples.min_shift, seed)
            else:
                out = window_loss(self.model, batch, sync, seed)
            shown = {k: v.detach() for k, v in out.items()}
            shown["tau"] = self.model.temperature.detach()
            self.log_dict(shown, prog_bar=True, batch_size=len(next(iter(batch.values()))))
            return out["loss"]

        def validation_metrics(self) -> dict[str, float]:
            from .evaluate.syncacc import evaluate_sync_accuracy

            if pack is not None:
                result = pack_sync_accuracy(self.model, pack, "val", clip_lengths=(5, 11))
            else:
                was = self.training
                self.model.eval()
                result = evaluate_sync_accuracy(
                    backend(self.model, 15), val_tracks, clip_lengths=(5, 11)
                )
                self.model.train(was)
            metrics = {f"val_acc{n}": float(v) for n, v in result.accuracy.items()}
            metrics["val_score"] = metrics["val_acc5"]
            return metrics

        def on_train_epoch_end(self) -> None:
            log_epoch(self)

        def configure_optimizers(self):
            # Every parameter: drop-and-tune turns requires_grad off, and Adam skips
            # parameters without a gradient.
            return adam_per_epoch(self.model.parameters(), config.optim)

    return SyncTask(), data_module(maker, steps), steps


__all__ = [
    "build_pack",
    "build_sync_task",
    "open_pack",
    "segment_loss",
    "track_offsets",
    "window_loss",
]
