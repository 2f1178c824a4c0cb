"""LightSyncNet: a sync-net on Light-ASD's front ends (the issue's "sync head on the public ASD
front ends"), trained here with the offset objective of the sync-nets.

Why not the ASD model itself: `offsets.ASDOffsets` reads a sync-aware ASD model's "speaking"
probability at every audio shift. That model was trained to keep shifts of one or two frames
positive (real videos are often that far off), so its rows form a plateau ±2 frames wide and
the argmax within it is chance: 43 % sync accuracy at 5 frames, the track offset within ±1
on 45 % of the VASP test tracks. A sync-net needs a peak one frame wide.

What it is:

- Encoders: Light-ASD's visual and audio encoders, module names as in its checkpoints
  (`model.visualEncoder.*`, `model.audioEncoder.*`), so `init_partial` loads them from
  `sync-light-asd` or `light-asd.ava`. The visual encoder reads only the lower half of the
  official 112 × 112 gray crop (rows 56–111, nose to chin: the mouth region IC-SyncNet takes
  from the face box); its convolutions are fully convolutional with a global max at the end,
  so the pretrained filters apply unchanged, at 40 % of the full crop's cost.
- Heads: per stream, a temporal convolution over five frames (the 0.2 s window of SyncNet and
  IC-SyncNet, centred on the frame), BatchNorm, ReLU and a 1 × 1 projection, then unit norm.
  Each frame t gets a visual embedding v_t and each audio frame u an audio embedding a_u.
- p(in sync | lips at t, audio at t + k) = σ(cos(v_t, a_{t+k}) / τ), τ learnable
  (IC-SyncNet's eq. 7). An offset costs one dot product, not an encoder pass: a track of T
  frames at 2K + 1 offsets runs each encoder once over T (+ 2K) frames.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .light_asd import AudioEncoder, Frontends, VisualEncoder

EMBEDDING = 128
HEAD_KERNEL = 5  # frames each head sees around its frame
MOUTH_TOP = 56  # first row of the 112 × 112 crop that the visual encoder reads
INIT_TEMPERATURE = 0.07  # as IC-SyncNet and CLIP


class _Encoders(Frontends):
    """Light-ASD's two encoders under the checkpoint's names (`model.*`)."""

    def __init__(self) -> None:
        super().__init__()
        self.visualEncoder = VisualEncoder()
        self.audioEncoder = AudioEncoder()


def _head(channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(channels, channels, HEAD_KERNEL, padding=HEAD_KERNEL // 2, bias=False),
        nn.BatchNorm1d(channels),
        nn.ReLU(),
        nn.Conv1d(channels, EMBEDDING, 1),
    )


def heard_frames(t: int, k: int, device: torch.device | None = None) -> torch.Tensor:
    """(2K + 1, T) index into audio starting K frames before the lips: row k + K, column t is
    the audio frame heard with lip frame t at offset k, for k = -K..K."""
    return torch.arange(2 * k + 1, device=device)[:, None] + torch.arange(t, device=device)


def offset_logits(
    visual: torch.Tensor, audio: torch.Tensor, temperature: torch.Tensor
) -> torch.Tensor:
    """Unit embeddings visual (B, T, D) and audio (B, T + 2K, D), the audio starting K frames
    before the lips → (B, 2K + 1, T) logits cos(v_t, a_{t+k}) / τ, row k + K for k = -K..K."""
    t, u = visual.shape[1], audio.shape[1]
    if u < t or (u - t) % 2:
        raise ValueError(f"audio must cover the {t} lip frames ± K, got {u} frames")
    # Indexing, not `unfold`: ONNX exports it with a dynamic number of frames.
    windows = audio[:, heard_frames(t, (u - t) // 2, audio.device)]  # (B, 2K + 1, T, D)
    return torch.einsum("btd,bktd->bkt", visual, windows) / temperature


class LightSyncNet(nn.Module):
    """Per-frame unit-norm lip and voice embeddings; sync logits cos / τ at every offset."""

    def __init__(self) -> None:
        super().__init__()
        self.model = _Encoders()
        self.visual_head = _head(128)
        self.audio_head = _head(128)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(INIT_TEMPERATURE)))

    @property
    def temperature(self) -> torch.Tensor:
        return self.log_temperature.exp()

    @staticmethod
    def _project(head: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(head(x.transpose(1, 2)).transpose(1, 2), dim=-1)

    def visual_embeddings(self, crops: torch.Tensor) -> torch.Tensor:
        """(B, T, 112, 112) gray 0–255 face crops → (B, T, D) unit-norm lip embeddings."""
        return self._project(
            self.visual_head, self.model.forward_visual_frontend(crops[:, :, MOUTH_TOP:])
        )

    def audio_embeddings(self, mfcc: torch.Tensor) -> torch.Tensor:
        """(B, 4U, 13) MFCC → (B, U, D) unit-norm voice embeddings, one per video frame."""
        return self._project(self.audio_head, self.model.forward_audio_frontend(mfcc))

    def offset_logits(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """`offset_logits` of this model's embeddings at its temperature."""
        return offset_logits(visual, audio, self.temperature)

    def forward(self, crops: torch.Tensor, mfcc: torch.Tensor) -> torch.Tensor:
        """crops (B, T, 112, 112), mfcc (B, 4(T + 2K), 13) starting K frames before the first
        crop → (B, 2K + 1, T) sync logits."""
        return self.offset_logits(self.visual_embeddings(crops), self.audio_embeddings(mfcc))


__all__ = ["LightSyncNet", "MOUTH_TOP", "offset_logits"]
