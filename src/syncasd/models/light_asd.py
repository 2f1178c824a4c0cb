"""Light-ASD (Liao et al., CVPR 2023): a lightweight audio-visual active speaker detector.

The module tree mirrors the public checkpoints (`model.visualEncoder.*`, `model.audioEncoder.*`,
`model.GRU.*`, `lossAV.FC`, `lossV.FC`) so `pretrain_AVA_CVPR.model` and
`finetuning_TalkSet.model` load unchanged with strict keys.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import VIDEO_MEAN, VIDEO_STD, ASDModel, Head

# Every BatchNorm in the original uses these (not PyTorch's defaults).
BN_ARGS = {"momentum": 0.01, "eps": 1e-3}
STEM_CHANNELS = 64  # VisualEncoder.stem's output channels (block2)


class VisualBlock(nn.Module):
    """Two parallel (spatial k×k → temporal k) branches, k = 3 and 5, summed, then a 1×1×1 conv."""

    def __init__(self, in_channels: int, out_channels: int, is_down: bool = False) -> None:
        super().__init__()
        stride = (1, 2, 2) if is_down else (1, 1, 1)
        self.relu = nn.ReLU()
        self.s_3 = nn.Conv3d(in_channels, out_channels, (1, 3, 3), stride, (0, 1, 1), bias=False)
        self.bn_s_3 = nn.BatchNorm3d(out_channels, **BN_ARGS)
        self.t_3 = nn.Conv3d(out_channels, out_channels, (3, 1, 1), padding=(1, 0, 0), bias=False)
        self.bn_t_3 = nn.BatchNorm3d(out_channels, **BN_ARGS)
        self.s_5 = nn.Conv3d(in_channels, out_channels, (1, 5, 5), stride, (0, 2, 2), bias=False)
        self.bn_s_5 = nn.BatchNorm3d(out_channels, **BN_ARGS)
        self.t_5 = nn.Conv3d(out_channels, out_channels, (5, 1, 1), padding=(2, 0, 0), bias=False)
        self.bn_t_5 = nn.BatchNorm3d(out_channels, **BN_ARGS)
        self.last = nn.Conv3d(out_channels, out_channels, (1, 1, 1), bias=False)
        self.bn_last = nn.BatchNorm3d(out_channels, **BN_ARGS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x3 = self.relu(self.bn_s_3(self.s_3(x)))
        x3 = self.relu(self.bn_t_3(self.t_3(x3)))
        x5 = self.relu(self.bn_s_5(self.s_5(x)))
        x5 = self.relu(self.bn_t_5(self.t_5(x5)))
        return self.relu(self.bn_last(self.last(x3 + x5)))


class AudioBlock(nn.Module):
    """Audio counterpart of VisualBlock on (B, C, mfcc, time): k×1 over MFCC, 1×k over time."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.m_3 = nn.Conv2d(in_channels, out_channels, (3, 1), padding=(1, 0), bias=False)
        self.bn_m_3 = nn.BatchNorm2d(out_channels, **BN_ARGS)
        self.t_3 = nn.Conv2d(out_channels, out_channels, (1, 3), padding=(0, 1), bias=False)
        self.bn_t_3 = nn.BatchNorm2d(out_channels, **BN_ARGS)
        self.m_5 = nn.Conv2d(in_channels, out_channels, (5, 1), padding=(2, 0), bias=False)
        self.bn_m_5 = nn.BatchNorm2d(out_channels, **BN_ARGS)
        self.t_5 = nn.Conv2d(out_channels, out_channels, (1, 5), padding=(0, 2), bias=False)
        self.bn_t_5 = nn.BatchNorm2d(out_channels, **BN_ARGS)
        self.last = nn.Conv2d(out_channels, out_channels, (1, 1), bias=False)
        self.bn_last = nn.BatchNorm2d(out_channels, **BN_ARGS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x3 = self.relu(self.bn_m_3(self.m_3(x)))
        x3 = self.relu(self.bn_t_3(self.t_3(x3)))
        x5 = self.relu(self.bn_m_5(self.m_5(x)))
        x5 = self.relu(self.bn_t_5(self.t_5(x5)))
        return self.relu(self.bn_last(self.last(x3 + x5)))


class VisualEncoder(nn.Module):
    """Three blocks (32, 64, 128 channels) with spatial max pools; LR-ASD passes its own block."""

    def __init__(self, block: type[nn.Module] = VisualBlock) -> None:
        super().__init__()
        self.block1 = block(1, 32, is_down=True)
        self.pool1 = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
        self.block2 = block(32, 64)
        self.pool2 = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
        self.block3 = block(64, 128)

    # The first two blocks, which training may freeze and run once per track (`stem`).
    stem_modules = ("block1", "block2")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T, H, W) normalised gray → (B, T, 128)."""
        return self.head(self.stem(x))

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T, H, W) → (B, 64, T, H/8, W/8): the spatial maps block3 reads."""
        return self.pool2(self.block2(self.pool1(self.block1(x))))

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Stem maps → (B, T, 128): block3, then the global spatial max per frame."""
        x = self.block3(x)
        b, c, t = x.shape[:3]
        return x.amax(dim=(3, 4)).transpose(1, 2).reshape(b, t, c)


class AudioEncoder(nn.Module):
    """Three blocks (32, 64, 128 channels) pooling time 4 → 1; LR-ASD passes its own block."""

    def __init__(self, block: type[nn.Module] = AudioBlock) -> None:
        super().__init__()
        self.block1 = block(1, 32)
        # The original applies MaxPool3d to a 4-D tensor, which pools only the last (time) axis
        # by 2; a 2-D pool with a unit kernel on the MFCC axis is the same operation.
        self.pool1 = nn.MaxPool2d((1, 3), (1, 2), (0, 1))
        self.block2 = block(32, 64)
        self.pool2 = nn.MaxPool2d((1, 3), (1, 2), (0, 1))
        self.block3 = block(64, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 13, 4T) MFCC → (B, T, 128)."""
        x = self.pool1(self.block1(x))
        x = self.pool2(self.block2(x))
        x = self.block3(x)
        return x.mean(dim=2).transpose(1, 2)


class BGRU(nn.Module):
    """Forward GRU, then a backward GRU over the forward GRU's output: run in sequence."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gru_forward = nn.GRU(channels, channels, num_layers=1, batch_first=True)
        self.gru_backward = nn.GRU(channels, channels, num_layers=1, batch_first=True)
        self.gelu = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = self.gru_forward(x)
        x = self.gelu(x)
        x, _ = self.gru_backward(torch.flip(x, dims=[1]))
        return self.gelu(torch.flip(x, dims=[1]))


class Frontends(nn.Module):
    """The input side Light-ASD and LR-ASD share: `visualEncoder` on normalised crops,
    `audioEncoder` on MFCC (each backbone builds its own encoders)."""

    visualEncoder: nn.Module
    audioEncoder: nn.Module

    def forward_visual_frontend(self, video: torch.Tensor) -> torch.Tensor:
        return self.visualEncoder(self.normalise(video))

    @staticmethod
    def normalise(video: torch.Tensor) -> torch.Tensor:
        """(B, T, H, W) gray 0–255 → (B, 1, T, H, W) as the encoder expects."""
        return (video.unsqueeze(1) / 255.0 - VIDEO_MEAN) / VIDEO_STD

    def forward_audio_frontend(self, mfcc: torch.Tensor) -> torch.Tensor:
        return self.audioEncoder(mfcc.unsqueeze(1).transpose(2, 3))


class LightASDBackbone(Frontends):
    """The original `ASD_Model`: encoders, additive fusion, BGRU."""

    def __init__(self) -> None:
        super().__init__()
        self.visualEncoder = VisualEncoder()
        self.audioEncoder = AudioEncoder()
        self.GRU = BGRU(128)

    def forward_audio_visual_backend(
        self, audio: torch.Tensor, visual: torch.Tensor
    ) -> torch.Tensor:
        return self.GRU(audio + visual)


class LightASD(ASDModel):
    """Light-ASD with the checkpoint's key tree and the common ASD model API."""

    backbone: type[nn.Module] = LightASDBackbone
    backend_width = 128  # what forward_audio_visual_backend gives per frame (lossAV's input)

    def __init__(self, backbone: nn.Module | None = None) -> None:
        super().__init__()
        self.model = backbone if backbone is not None else self.backbone()
        self.lossAV = Head(self.backend_width)
        self.lossV = Head(128)

    # Parameter groups by role, for training with a frozen front end: the visual encoder and
    # the head trained on it alone.
    visual_modules = ("model.visualEncoder", "lossV")
    stem_modules = tuple(f"model.visualEncoder.{m}" for m in VisualEncoder.stem_modules)

    def frame_logits(self, video: torch.Tensor, mfcc: torch.Tensor) -> torch.Tensor:
        """video (B, T, 112, 112) gray 0–255, mfcc (B, 4T, 13) → (B, T, 2) speaking logits."""
        return self.backend_logits(self.visual_embeddings(video), self.audio_embeddings(mfcc))

    def visual_embeddings(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, 112, 112) → (B, T, 128)."""
        return self.model.forward_visual_frontend(video)

    def visual_maps(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, 112, 112) → (B, 64, T, 14, 14): the maps of the visual encoder's first two
        blocks (the stem), which block3 reads (`visual_from_maps`)."""
        return self.model.visualEncoder.stem(self.model.normalise(video))

    def visual_from_maps(self, maps: torch.Tensor) -> torch.Tensor:
        """`visual_maps` output → (B, T, 128), the same as `visual_embeddings` of the crops."""
        return self.model.visualEncoder.head(maps)

    def visual_stem(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, 112, 112) → (B, T, 64·14·14): `visual_maps` per frame flattened (what
        training with `freeze: [visual-stem]` caches once per track)."""
        x = self.visual_maps(video)
        b, c, t, h, w = x.shape
        return x.permute(0, 2, 1, 3, 4).reshape(b, t, c * h * w)

    def visual_from_stem(self, stem: torch.Tensor) -> torch.Tensor:
        """`visual_stem` output → (B, T, 128), the same as `visual_embeddings` of the crops."""
        b, t, d = stem.shape
        side = int(round((d / STEM_CHANNELS) ** 0.5))
        return self.visual_from_maps(
            stem.reshape(b, t, STEM_CHANNELS, side, side).permute(0, 2, 1, 3, 4)
        )

    def audio_embeddings(self, mfcc: torch.Tensor) -> torch.Tensor:
        """(B, 4T, 13) → (B, T, 128)."""
        return self.model.forward_audio_frontend(mfcc)

    def backend_logits(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """The backend f_b of the seed's contrastive loss: embeddings → (B, T, 2) logits."""
        t = min(audio.shape[1], visual.shape[1])
        return self.lossAV(self.model.forward_audio_visual_backend(audio[:, :t], visual[:, :t]))

    def auxiliary_logits(
        self, visual: torch.Tensor, audio: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Logits of the auxiliary heads the original trains beside lossAV: "V" (face alone)."""
        return {"V": self.lossV(visual)}

    def visual_logits(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, 112, 112) → (B, T, 2) speaking logits from the face alone.

        The auxiliary head `lossV` is trained on the visual embeddings to predict speaking: a
        lip-movement model, as the VAD × lip-movement baseline needs.
        """
        return self.lossV(self.model.forward_visual_frontend(video))
