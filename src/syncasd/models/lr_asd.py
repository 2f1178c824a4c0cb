"""LR-ASD (Liao et al., IJCV 2025): a lightweight and robust active speaker detector.

The module tree mirrors the public checkpoints (`model.visualEncoder.*`, `model.audioEncoder.*`,
`model.fusion.*`, `model.detector.*`, `lossAV.FC`, `lossV.FC`) so `pretrain_AVA.model` and
`finetuning_TalkSet.model` load unchanged with strict keys.
"""

from __future__ import annotations

import torch
from torch import nn

# Same encoders as Light-ASD around LR-ASD's own blocks; same BatchNorm settings.
from .light_asd import BN_ARGS, AudioEncoder, Frontends, LightASD, VisualEncoder


def _conv_bn_relu(conv: nn.Module, bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return torch.relu(bn(conv(x)))


class VisualBlock(nn.Module):
    """Spatial k1×k1 → k2×k2 (halving then full channels), then temporal k1 → k2, in series."""

    def __init__(
        self, in_channels: int, out_channels: int, k1: int = 5, k2: int = 3, is_down: bool = False
    ) -> None:
        super().__init__()
        mid = out_channels // 2
        p1, p2 = (k1 - 1) // 2, (k2 - 1) // 2
        stride = (1, 2, 2) if is_down else (1, 1, 1)
        self.s_1 = nn.Conv3d(in_channels, mid, (1, k1, k1), stride, (0, p1, p1), bias=False)
        self.s_norm_1 = nn.BatchNorm3d(mid, **BN_ARGS)
        self.s_2 = nn.Conv3d(mid, out_channels, (1, k2, k2), padding=(0, p2, p2), bias=False)
        self.s_norm_2 = nn.BatchNorm3d(out_channels, **BN_ARGS)
        self.t_1 = nn.Conv3d(out_channels, out_channels, (k1, 1, 1), padding=(p1, 0, 0), bias=False)
        self.t_norm_1 = nn.BatchNorm3d(out_channels, **BN_ARGS)
        self.t_2 = nn.Conv3d(out_channels, out_channels, (k2, 1, 1), padding=(p2, 0, 0), bias=False)
        self.t_norm_2 = nn.BatchNorm3d(out_channels, **BN_ARGS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _conv_bn_relu(self.s_1, self.s_norm_1, x)
        x = _conv_bn_relu(self.s_2, self.s_norm_2, x)
        x = _conv_bn_relu(self.t_1, self.t_norm_1, x)
        return _conv_bn_relu(self.t_2, self.t_norm_2, x)


class AudioBlock(nn.Module):
    """Audio counterpart of VisualBlock on (B, C, mfcc, time): k×1 over MFCC, 1×k over time."""

    def __init__(self, in_channels: int, out_channels: int, k1: int = 5, k2: int = 3) -> None:
        super().__init__()
        mid = out_channels // 2
        p1, p2 = (k1 - 1) // 2, (k2 - 1) // 2
        self.m_1 = nn.Conv2d(in_channels, mid, (k1, 1), padding=(p1, 0), bias=False)
        self.m_norm_1 = nn.BatchNorm2d(mid, **BN_ARGS)
        self.m_2 = nn.Conv2d(mid, out_channels, (k2, 1), padding=(p2, 0), bias=False)
        self.m_norm_2 = nn.BatchNorm2d(out_channels, **BN_ARGS)
        self.t_1 = nn.Conv2d(out_channels, out_channels, (1, k1), padding=(0, p1), bias=False)
        self.t_norm_1 = nn.BatchNorm2d(out_channels, **BN_ARGS)
        self.t_2 = nn.Conv2d(out_channels, out_channels, (1, k2), padding=(0, p2), bias=False)
        self.t_norm_2 = nn.BatchNorm2d(out_channels, **BN_ARGS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _conv_bn_relu(self.m_1, self.m_norm_1, x)
        x = _conv_bn_relu(self.m_2, self.m_norm_2, x)
        x = _conv_bn_relu(self.t_1, self.t_norm_1, x)
        return _conv_bn_relu(self.t_2, self.t_norm_2, x)


class Fusion(nn.Module):
    """Concatenate two (B, T, C) streams on channels and gate them: x · σ(BN(1×1 conv(x)))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.attention = nn.Conv1d(channels, channels, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm1d(channels, **BN_ARGS)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        x = torch.cat((x1, x2), dim=2).transpose(1, 2)
        gate = torch.sigmoid(self.bn(self.attention(x)))
        return (x * gate).transpose(1, 2)


class Detector(nn.Module):
    """Two GRUs read the same input, one reversed in time; their outputs are fused by a gate.

    Unlike Light-ASD's BGRU, the backward GRU reads the fused features, not the forward output.
    """

    def __init__(self, channels: int = 256) -> None:
        super().__init__()
        hidden = channels // 4
        self.gru_forward = nn.GRU(channels, hidden, num_layers=1, batch_first=True)
        self.gru_backward = nn.GRU(channels, hidden, num_layers=1, batch_first=True)
        self.drop = nn.Dropout(0.5)
        self.attention = Fusion(channels // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(x)
        forward, _ = self.gru_forward(x)
        backward, _ = self.gru_backward(torch.flip(x, dims=[1]))
        return self.attention(forward, torch.flip(backward, dims=[1]))


class LRASDBackbone(Frontends):
    """The original `ASD_Model`: encoders, gated concatenation fusion, bidirectional detector."""

    def __init__(self) -> None:
        super().__init__()
        self.visualEncoder = VisualEncoder(VisualBlock)
        self.audioEncoder = AudioEncoder(AudioBlock)
        self.fusion = Fusion(256)
        self.detector = Detector(256)

    def forward_audio_visual_backend(
        self, audio: torch.Tensor, visual: torch.Tensor
    ) -> torch.Tensor:
        # Audio first: the gate's channel order follows the checkpoint.
        return self.detector(self.fusion(audio, visual))


class LRASD(LightASD):
    """LR-ASD with the checkpoint's key tree; Light-ASD's API around another backbone."""

    backbone = LRASDBackbone
