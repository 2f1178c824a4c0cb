"""`syncasd train ic-syncnet`: IC-SyncNet (Park et al. 2024) on the same corpus as the ASD models.

Each batch holds `samples.batch` five-image mouth windows of speaking frames with their audio
window at offset 0, `samples.hard` windows of the same track at other offsets (hard negatives)
and, as easy negatives, `sync.easy` of the other samples' positive audio (`data/syncpairs.py`).
Loss: BBCE (paper eq. 8, `losses.bbce_loss`). The last `sync.tune_epochs` epochs are the
paper's drop-and-tune phase: DropBlock off, only the BatchNorm layers train.

Every epoch scores the validation identities by the paper's sync accuracy (±15 frames, correct
within ±1, clips of 5 and 11 frames); the best epoch by the 5-frame accuracy is exported as a
plain state dict (`OUTPUT/model.pt`, loadable as `load_model("ic-syncnet", weights=...)`).
"""

from __future__ import annotations

import torch

from .errors import SyncASDError


def build_sync_task(config, progress: bool = True):
    """The LightningModule of a sync-net config, with its data and steps per epoch."""
    from .data.syncpairs import SyncBatchMaker
    from .losses import bbce_loss
    from .models import get_spec, load_model
    from .models.icsyncnet import IMAGES
    from .offsets import ICSyncOffsets
    from .train import _lightning, adam_per_epoch, data_module, log_epoch, open_corpus

    L = _lightning()
    spec = get_spec(config.model)
    if config.init is None:
        model = spec.builder()
    else:
        model = load_model(config.model, weights=config.init)
    corpus = open_corpus(config, progress)
    train_ids, val_ids = corpus.split("train"), corpus.split("val")
    if not train_ids or not val_ids:
        raise SyncASDError("the corpus needs tracks in both the train and the val split")
    maker = SyncBatchMaker(corpus, train_ids, model.dims, config.sample_config(), config.seed)
    steps = config.steps_per_epoch or maker.steps_per_epoch()
    val_tracks = [
        corpus.track(i)
        for i in val_ids
        if not corpus.tracks[i].negative and corpus.tracks[i].length >= 2 * IMAGES
    ][: config.val_tracks]
    sync = config.sync

    class SyncTask(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.model.train()

        def on_train_epoch_start(self) -> None:
            if self.current_epoch >= config.epochs - sync.tune_epochs:
                self.model.drop_and_tune()

        def training_step(self, batch, index):
            mouths, mel = batch["mouths"].float(), batch["mel"]
            b, n = mel.shape[:2]
            visual = self.model.visual_embeddings(mouths)
            audio = self.model.audio_embeddings(mel.flatten(0, 1)).view(b, n, -1)
            logits = self.model.similarity_logits(visual, audio)  # (B, 1 + hard)
            easy = None
            if sync.easy > 0 and b > 1:
                # Easy negatives: other samples' in-sync audio (other tracks, mostly); the
                # index (i + 1 + r) mod B with r in 0..B-2 is never i itself.
                g = torch.Generator().manual_seed(config.seed * 1_000_003 + self.global_step)
                others = (
                    torch.arange(b)[:, None]
                    + 1
                    + torch.rand(b, min(sync.easy, b - 1), generator=g).mul(b - 1).long()
                ) % b
                easy = self.model.similarity_logits(visual, audio[:, 0][others])
            loss = bbce_loss(logits[:, 0], logits[:, 1:], easy, sync.easy_weight)
            with torch.no_grad():
                hard_correct = (logits[:, :1] > logits[:, 1:]).float().mean()
            self.log_dict(
                {"loss": loss, "hard_acc": hard_correct, "tau": self.model.temperature},
                prog_bar=True,
                batch_size=b,
            )
            return loss

        def validation_metrics(self) -> dict[str, float]:
            from .evaluate.syncacc import evaluate_sync_accuracy

            was = self.training
            self.model.eval()
            result = evaluate_sync_accuracy(
                ICSyncOffsets(self.model, 15), val_tracks, clip_lengths=(5, 11)
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
