"""Multi-task audio-visual ASD (Zhang, Xiao, Yang & Shan, "Multi-Task Learning for Audio-Visual
Active Speaker Detection", ActivityNet Challenge 2019 task B-2 report).

Architecture (paper §2, Fig. 1), numbers as in the paper:

- Visual subnetwork (§2.1): the 3D-ResNet18 of Stafylakis & Tzimiropoulos used for lipreading:
  a spatio-temporal conv with temporal kernel 5 (1 → 64, 5×7×7, spatial stride 2) + BN + ReLU +
  spatial max pool, then a ResNet-18 on every frame (basic blocks [2, 2, 2, 2], 64 → 512
  channels), average pool, and a final FC 512 → 128: one 128-d embedding per frame.
- Audio subnetwork (§2.2): the VGG-M audio stream of SyncNet (syncnet_python `netcnnaud`,
  Conv 1→64→192→384→256→256→512, last kernel 5×4, then `netfcaud` FC 512 → 512 → BN → ReLU)
  on 13 MFCC × 20 audio frames (25 ms window, 10 ms hop) around each video frame, with the
  final fc re-sized to 128 as the paper re-trains it ("fc8" → 128-d). Module names follow
  syncnet_python, so SyncNet v2 audio weights load into everything but that last layer.
- Fusion (§2.3): concat (256) → 2-layer bidirectional GRU with 256 cells → a classifier of 3
  fully-connected layers on every time step.
- Loss (§2.4, eq. 1): L = Σ_t (L_CE + λ·L_contrast), λ = 1, L_contrast the SyncNet contrastive
  loss on the Euclidean distance between the frame's audio and visual embeddings: pulled
  together when the label is speaking (SPEAKING_AUDIBLE), pushed apart up to a margin when it is
  not (NOT_SPEAKING, SPEAKING_NOT_AUDIBLE). See `syncasd.losses.euclidean_contrastive_loss`.

Where the paper is silent (our choices):

- Audio frames per video frame. The paper passes "the surrounding 20 audio frames" of each video
  frame's time; its MFCC are ours (25 ms / 10 ms, 100 rows per second), so no resampling is
  needed: frame t (rows 4t … 4t+3, centre at row 4t+2) gets rows 4t−8 … 4t+11, i.e. the rows of
  frames t−2 … t+2 (20 rows centred on the frame, exactly SyncNet's window for its 5-frame clip
  centred on t). At the track ends the rows are edge-padded by whole frames.
- The margin: the report gives none (nor does SyncNet's paper). Default 1.0, a constructor
  argument. The loss uses SyncNet's ½ factor.
- The classifier's hidden widths: 512 → 256 → 64 → 2 with ReLU. No dropout anywhere.
- Reduction over a batch: eq. 1 sums over the T time steps of a window; we take that sum and
  average it over the windows of the batch.
- Image normalisation ("overall mean and variance"): the TalkNet family's gray mean / std.
- The two-stage schedule (§2.4): stage 1 trains only the final FC of each subnetwork with only
  the contrastive loss (`loss(..., stage=1)`, `stage1_parameters()`), stage 2 everything with
  eq. 1. Freezing is the trainer's business.
"""

from __future__ import annotations

import torch
from torch import nn

from ..losses import euclidean_contrastive_loss, frame_cross_entropy
from ..timebase import ROWS_PER_FRAME
from .layers import VIDEO_MEAN, VIDEO_STD, ASDModel
from .rothnet import align_lengths, init_conv_bn, mfcc_windows

AUDIO_CONTEXT = 2  # frames either side: 5 frames × 4 rows = 20 audio frames per video frame


# --- visual: 3D-ResNet18 ------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """ResNet basic block: conv3×3 → BN → ReLU → conv3×3 → BN, + shortcut, ReLU."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(y + shortcut)


class ResNet18(nn.Module):
    """2D ResNet-18 trunk on (N, 64, 28, 28) → (N, 512) (global average pool)."""

    def __init__(self) -> None:
        super().__init__()
        channels = (64, 128, 256, 512)
        in_channels = 64
        for i, c in enumerate(channels):
            stride = 1 if i == 0 else 2
            layer = nn.Sequential(BasicBlock(in_channels, c, stride), BasicBlock(c, c))
            setattr(self, f"layer{i + 1}", layer)
            in_channels = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))


class VisualNet(nn.Module):
    """3D-ResNet18: (B, 1, T, 112, 112) normalised gray → (B, T, 128)."""

    def __init__(self, embed_dim: int = 128) -> None:
        super().__init__()
        self.frontend3D = nn.Sequential(
            nn.Conv3d(1, 64, (5, 7, 7), stride=(1, 2, 2), padding=(2, 3, 3), bias=False),
            nn.BatchNorm3d(64),
            nn.ReLU(),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        )
        self.resnet = ResNet18()
        self.fc = nn.Linear(512, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        x = self.frontend3D(x)  # (B, 64, T, 28, 28); each clip zero-padded in time on its own
        x = x.transpose(1, 2).flatten(0, 1)  # (B·T, 64, 28, 28)
        x = self.fc(self.resnet(x))
        return x.reshape(b, -1, x.shape[-1])


# --- audio: SyncNet's VGG-M ----------------------------------------------------------------------


class AudioNet(nn.Module):
    """SyncNet's VGG-M audio stream: (N, 1, 13, 20) MFCC (coefficients × time) → (N, 128)."""

    def __init__(self, embed_dim: int = 128) -> None:
        super().__init__()
        self.netcnnaud = nn.Sequential(
            nn.Conv2d(1, 64, 3, 1, 1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(1, 1),
            nn.Conv2d(64, 192, 3, 1, 1),
            nn.BatchNorm2d(192),
            nn.ReLU(),
            nn.MaxPool2d(3, (1, 2)),  # 13×20 → 11×9
            nn.Conv2d(192, 384, 3, 1, 1),
            nn.BatchNorm2d(384),
            nn.ReLU(),
            nn.Conv2d(384, 256, 3, 1, 1),
            nn.BatchNorm2d(256),
            nn.ReLU(),
            nn.Conv2d(256, 256, 3, 1, 1),
            nn.BatchNorm2d(256),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),  # → 5×4
            nn.Conv2d(256, 512, (5, 4)),  # → 1×1
            nn.BatchNorm2d(512),
            nn.ReLU(),
        )
        self.netfcaud = nn.Sequential(
            nn.Linear(512, 512),
            nn.BatchNorm1d(512),
            nn.ReLU(),
            nn.Linear(512, embed_dim),  # SyncNet's 1024-d fc, re-trained to 128-d (paper §2.2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.netfcaud(self.netcnnaud(x).flatten(1))


# --- the model -----------------------------------------------------------------------------------


class MultiTaskASD(ASDModel):
    """Zhang et al. 2019 multi-task ASD with the common ASD API and the paper's loss."""

    def __init__(
        self,
        embed_dim: int = 128,
        gru_hidden: int = 256,
        fc_hidden: tuple[int, int] = (256, 64),
        margin: float = 1.0,
        lam: float = 1.0,
    ) -> None:
        super().__init__()
        self.visual = VisualNet(embed_dim)
        self.audio = AudioNet(embed_dim)
        self.gru = nn.GRU(
            2 * embed_dim, gru_hidden, num_layers=2, batch_first=True, bidirectional=True
        )
        self.classifier = nn.Sequential(
            nn.Linear(2 * gru_hidden, fc_hidden[0]),
            nn.ReLU(),
            nn.Linear(fc_hidden[0], fc_hidden[1]),
            nn.ReLU(),
            nn.Linear(fc_hidden[1], 2),
        )
        self.margin = margin
        self.lam = lam
        init_conv_bn(self)

    def embed(self, video: torch.Tensor, mfcc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """video (B, T, 112, 112) gray 0–255, mfcc (B, 4T, 13) → visual and audio embeddings,
        each (B, T, 128)."""
        video, mfcc = align_lengths(video, mfcc)
        b = video.shape[0]
        x = ((video / 255.0 - VIDEO_MEAN) / VIDEO_STD).unsqueeze(1)
        visual = self.visual(x)
        windows = mfcc_windows(mfcc, AUDIO_CONTEXT, AUDIO_CONTEXT)  # (B, T, 20, 13)
        rows = (2 * AUDIO_CONTEXT + 1) * ROWS_PER_FRAME
        a = windows.reshape(-1, 1, rows, mfcc.shape[2]).transpose(2, 3)  # (B·T, 1, 13, 20)
        audio = self.audio(a)
        return visual, audio.reshape(b, -1, audio.shape[-1])

    def backend(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Concatenated per-frame features → BiGRU → 3 FC → (B, T, 2) logits."""
        fused, _ = self.gru(torch.cat([visual, audio], dim=-1))
        return self.classifier(fused)

    def frame_logits(self, video: torch.Tensor, mfcc: torch.Tensor) -> torch.Tensor:
        """video (B, T, 112, 112) gray 0–255, mfcc (B, 4T, 13) → (B, T, 2) speaking logits."""
        return self.backend(*self.embed(video, mfcc))

    # --- training --------------------------------------------------------------------------

    def stage1_parameters(self) -> list[nn.Parameter]:
        """Stage 1 of §2.4: only the final FC of each subnetwork is trained (contrastive only)."""
        return [*self.visual.fc.parameters(), *self.audio.netfcaud[3].parameters()]

    def loss_terms(
        self, video: torch.Tensor, mfcc: torch.Tensor, labels: torch.Tensor, stage: int = 2
    ) -> dict[str, torch.Tensor]:
        """Eq. 1, L = Σ_t (L_CE + λ·L_contrast) per window, averaged over the B windows.

        labels (B, T) in {0, 1}: 1 = SPEAKING_AUDIBLE (a matched audio-visual pair), 0 = not
        speaking or speaking-not-audible (unmatched). stage=1: the contrastive term alone.
        """
        visual, audio = self.embed(video, mfcc)
        labels = labels[:, : visual.shape[1]].long()
        contrast = (
            euclidean_contrastive_loss(visual, audio, labels, self.margin, reduction="none")
            .sum(dim=1)
            .mean()
        )
        if stage == 1:
            return {"total": contrast, "contrast": contrast}
        if stage != 2:
            raise ValueError(f"stage must be 1 or 2, got {stage}")
        ce = frame_cross_entropy(self.backend(visual, audio), labels, reduction="none")
        ce = ce.sum(dim=1).mean()
        return {"total": ce + self.lam * contrast, "ce": ce, "contrast": contrast}

    def loss(
        self, video: torch.Tensor, mfcc: torch.Tensor, labels: torch.Tensor, stage: int = 2
    ) -> torch.Tensor:
        """Training loss on a batch of windows; labels (B, T) in {0, 1}."""
        return self.loss_terms(video, mfcc, labels, stage)["total"]
