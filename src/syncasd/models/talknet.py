"""TalkNet (Tao et al., ACM MM 2021) and Sync-TalkNet (TalkNet + sinusoidal positional encoding).

TalkNet: a visual temporal encoder (3D conv + ResNet18 per frame, then a depthwise-separable
temporal conv net), an audio temporal encoder (SE-ResNet34-style over MFCCs), audio↔visual
cross-attention and an audio-visual self-attention, each one post-norm transformer layer.

The module tree mirrors the public checkpoints (`model.visualFrontend.*`, `model.visualTCN.*`,
`model.visualConv1D.*`, `model.audioEncoder.*`, `model.crossA2V|crossV2A|selfAV.*`,
`lossAV.FC`, `lossA.FC`, `lossV.FC`; 487 keys) so `pretrain_TalkSet.model` and
`pretrain_AVA.model` load unchanged with strict keys.

Sync-TalkNet adds the sinusoidal positional encoding of "Attention is all you need" to the
inputs of the cross-attention and of the self-attention layers (X̂ = X + PE, Ŷ = Y + PE); it
has no parameters of its own, so it loads TalkNet checkpoints.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from .layers import VIDEO_MEAN, VIDEO_STD, ASDModel, Head

# The visual front end's BatchNorms use these; the audio encoder and the temporal nets keep
# PyTorch's defaults (eps 1e-5).
_BN_VISUAL = {"momentum": 0.01, "eps": 1e-3}


# --- visual temporal encoder -------------------------------------------------------------------


class ResNetLayer(nn.Module):
    """Two basic residual units whose BN + ReLU sits after the addition (pre-activation style):

    conv1a → BN → ReLU → conv2a, + (downsampled) input → outbna → ReLU →
    conv1b → BN → ReLU → conv2b, + the first sum (before outbna) → outbnb → ReLU.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv1a = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1a = nn.BatchNorm2d(out_channels, **_BN_VISUAL)
        self.conv2a = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        # Present in every layer (so in the checkpoint) but only used when stride > 1.
        self.downsample = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
        self.outbna = nn.BatchNorm2d(out_channels, **_BN_VISUAL)
        self.conv1b = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn1b = nn.BatchNorm2d(out_channels, **_BN_VISUAL)
        self.conv2b = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.outbnb = nn.BatchNorm2d(out_channels, **_BN_VISUAL)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2a(F.relu(self.bn1a(self.conv1a(x))))
        first = y + (x if self.stride == 1 else self.downsample(x))
        y = F.relu(self.outbna(first))
        y = self.conv2b(F.relu(self.bn1b(self.conv1b(y))))
        return F.relu(self.outbnb(y + first))


class ResNet(nn.Module):
    """ResNet18 trunk on 28×28 maps → 512 channels at 4×4 → 4×4 average → (N, 512, 1, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer1 = ResNetLayer(64, 64, stride=1)
        self.layer2 = ResNetLayer(64, 128, stride=2)
        self.layer3 = ResNetLayer(128, 256, stride=2)
        self.layer4 = ResNetLayer(256, 512, stride=2)
        self.avgpool = nn.AvgPool2d(kernel_size=(4, 4), stride=(1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x)


class VisualFrontend(nn.Module):
    """3D conv (5×7×7 over time × space) + BN + ReLU + spatial max pool, then a 2D ResNet18."""

    def __init__(self) -> None:
        super().__init__()
        self.frontend3D = nn.Sequential(
            nn.Conv3d(1, 64, (5, 7, 7), stride=(1, 2, 2), padding=(2, 3, 3), bias=False),
            nn.BatchNorm3d(64, **_BN_VISUAL),
            nn.ReLU(),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        )
        self.resnet = ResNet()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, T, 112, 112) normalised gray → (N, T, 512).

        The 5-frame temporal kernel (zero-padded by 2) sees only frames of the same sequence n.
        """
        n, t = x.shape[0], x.shape[2]
        x = self.frontend3D(x)  # (N, 64, T, 28, 28)
        x = x.transpose(1, 2).reshape(n * t, 64, x.shape[3], x.shape[4])
        return self.resnet(x).reshape(n, t, 512)


class GlobalLayerNorm(nn.Module):
    """Layer norm over channel and time together, per sample (eps 1e-8 inside the sqrt)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, channels, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """(B, C, T) → (B, C, T)."""
        mean = y.mean(dim=1, keepdim=True).mean(dim=2, keepdim=True)
        var = (y - mean).pow(2).mean(dim=1, keepdim=True).mean(dim=2, keepdim=True)
        return self.gamma * (y - mean) / torch.pow(var + 1e-8, 0.5) + self.beta


class DSConv1d(nn.Module):
    """Residual unit: ReLU → BN → depthwise conv k3 → PReLU → gLN → 1×1 conv, + input."""

    def __init__(self, channels: int = 512) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.ReLU(),
            nn.BatchNorm1d(channels),
            nn.Conv1d(channels, channels, 3, padding=1, groups=channels, bias=False),
            nn.PReLU(),
            GlobalLayerNorm(channels),
            nn.Conv1d(channels, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class VisualTCN(nn.Module):
    """The V-TCN: five DSConv1d units on (B, 512, T)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(*(DSConv1d(512) for _ in range(5)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class VisualConv1D(nn.Module):
    """(B, 512, T) → conv k5 → BN → ReLU → 1×1 conv → (B, 128, T)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(512, 256, 5, padding=2),
            nn.BatchNorm1d(256),
            nn.ReLU(),
            nn.Conv1d(256, 128, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# --- audio temporal encoder --------------------------------------------------------------------


class SELayer(nn.Module):
    """Squeeze-and-excitation: global average → FC (C/8) → ReLU → FC → sigmoid → scale."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction),
            nn.ReLU(),
            nn.Linear(channels // reduction, channels),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean(dim=(2, 3)))[:, :, None, None]


class SEBasicBlock(nn.Module):
    """conv1 → ReLU → BN (this order, as in the original) → conv2 → BN → SE, + shortcut, ReLU."""

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int | tuple[int, int] = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.se = SELayer(channels)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn1(F.relu(self.conv1(x)))
        y = self.se(self.bn2(self.conv2(y)))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(y + shortcut)


class AudioEncoder(nn.Module):
    """SE-ResNet34-style encoder on (B, 1, 13, 4T) MFCC: blocks [3, 4, 6, 3], channels
    [16, 32, 64, 128]; time stride 4 in total, then the mean over the MFCC axis → (B, T, 128)."""

    def __init__(
        self,
        layers: tuple[int, ...] = (3, 4, 6, 3),
        channels: tuple[int, ...] = (16, 32, 64, 128),
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels[0], 7, stride=(2, 1), padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(channels[0])
        strides = (1, (2, 2), (2, 2), (1, 1))
        in_channels = channels[0]
        for i, (n, c, s) in enumerate(zip(layers, channels, strides, strict=True)):
            setattr(self, f"layer{i + 1}", self._make_layer(in_channels, c, n, s))
            in_channels = c

    @staticmethod
    def _make_layer(
        in_channels: int, channels: int, blocks: int, stride: int | tuple[int, int]
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or in_channels != channels:
            downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels),
            )
        units = [SEBasicBlock(in_channels, channels, stride, downsample)]
        units += [SEBasicBlock(channels, channels) for _ in range(1, blocks)]
        return nn.Sequential(*units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=2).transpose(1, 2)


# --- attention -------------------------------------------------------------------------------


class PositionalEncoding(nn.Module):
    """Adds a sinusoidal table to (B, T, d) inputs; no parameters, nothing in the state dict.

    "vaswani" (Attention is all you need): PE[pos, 2i] = sin(pos / 10000^(2i/d)),
    PE[pos, 2i+1] = cos(pos / 10000^(2i/d)). "official": the SyncTalkNet code's table, where the
    sine at even dim k uses 10000^(2k/d) and the cosine at dim k+1 uses 10000^(2(k+1)/d).
    """

    def __init__(self, d_model: int, variant: Literal["vaswani", "official"] = "vaswani") -> None:
        super().__init__()
        if variant not in ("vaswani", "official"):
            raise ValueError(f"unknown positional encoding variant {variant!r}")
        if d_model % 2:
            raise ValueError("d_model must be even")
        self.d_model = d_model
        self.variant = variant
        even = torch.arange(0, d_model, 2, dtype=torch.float64)
        if variant == "vaswani":
            sin_exp = cos_exp = even / d_model
        else:
            sin_exp, cos_exp = 2 * even / d_model, 2 * (even + 1) / d_model
        # Frequencies in float64, rounded once; the angles pos·f are formed in float32 at run
        # time, so any length works and ONNX keeps the length dynamic.
        freqs = torch.stack((10000.0**-sin_exp, 10000.0**-cos_exp)).float()  # (2, d/2)
        self.register_buffer("freqs", freqs, persistent=False)

    def table(self, length: int) -> torch.Tensor:
        """(length, d_model) float32 encoding."""
        pos = torch.arange(length, device=self.freqs.device, dtype=torch.float32)[:, None]
        sin = torch.sin(pos * self.freqs[0])
        cos = torch.cos(pos * self.freqs[1])
        return torch.stack((sin, cos), dim=-1).flatten(1)  # interleave: sin, cos, sin, ...

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.table(x.shape[1]).to(x.dtype)


class AttentionLayer(nn.Module):
    """One post-norm transformer layer where the query comes from `tar` and the key and value
    from `src`; the residual is added to `src`:

        y = norm1(src + MHA(q=tar, k=src, v=src));  out = norm2(y + FFN(y)),  FFN = 4d, ReLU.

    With `positional_encoding` (Sync-TalkNet) both inputs first get the sinusoidal PE added, so
    the residual carries it too, as in the Sync-TalkNet code. With `band` each query attends
    only to the frames within ±band of its own (TalkNet attends to the whole window): lips and
    voice in sync line up within a few frames, and a window-long reach lets another turn's
    speech vote on this frame.
    """

    def __init__(
        self,
        d_model: int,
        nhead: int = 8,
        dropout: float = 0.1,
        positional_encoding: PositionalEncoding | None = None,
        band: int | None = None,
    ) -> None:
        super().__init__()
        self.band = band
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, d_model * 4)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_model * 4, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.positional_emb = positional_encoding

    def attend(self, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """`self_attn` (nn.MultiheadAttention's parameters and maths) with queries from `query`
        and keys and values from `memory`, (B, T, d) batch-first.

        Written out rather than calling nn.MultiheadAttention, whose ONNX trace freezes the
        sequence length; the numbers agree with it to float32 rounding.
        """
        mha = self.self_attn
        d, h = mha.embed_dim, mha.num_heads
        w, b = mha.in_proj_weight, mha.in_proj_bias
        b_size = query.shape[0]

        def heads(x: torch.Tensor) -> torch.Tensor:  # (B, T, d) → (B, h, T, d/h)
            return x.reshape(b_size, -1, h, d // h).transpose(1, 2)

        q = heads(F.linear(query, w[:d], b[:d])) * (d // h) ** -0.5
        k = heads(F.linear(memory, w[d : 2 * d], b[d : 2 * d]))
        v = heads(F.linear(memory, w[2 * d :], b[2 * d :]))
        logits = q @ k.transpose(-2, -1)  # (B, h, T_query, T_memory)
        if self.band is not None:
            i = torch.arange(logits.shape[-2], device=logits.device)[:, None]
            j = torch.arange(logits.shape[-1], device=logits.device)[None, :]
            logits = logits.masked_fill((i - j).abs() > self.band, float("-inf"))
        weights = torch.softmax(logits, dim=-1)
        weights = F.dropout(weights, mha.dropout, self.training)
        out = (weights @ v).transpose(1, 2).reshape(b_size, -1, d)
        return mha.out_proj(out)

    def forward(self, src: torch.Tensor, tar: torch.Tensor) -> torch.Tensor:
        """(B, T, d) each → (B, T, d). Sequence-first in the original; every op here other than
        the attention acts per position, so batch-first gives the same numbers."""
        if self.positional_emb is not None:
            src, tar = self.positional_emb(src), self.positional_emb(tar)
        src = self.norm1(src + self.dropout1(self.attend(tar, src)))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout2(ffn))


# --- the model -----------------------------------------------------------------------------


class TalkNetBackbone(nn.Module):
    """The original `talkNetModel`, with its intermediate methods."""

    def __init__(
        self,
        cross_pe: PositionalEncoding | None = None,
        self_pe: PositionalEncoding | None = None,
    ) -> None:
        super().__init__()
        self.visualFrontend = VisualFrontend()
        self.visualTCN = VisualTCN()
        self.visualConv1D = VisualConv1D()
        self.audioEncoder = AudioEncoder()
        self.crossA2V = AttentionLayer(128, 8, positional_encoding=cross_pe)
        self.crossV2A = AttentionLayer(128, 8, positional_encoding=cross_pe)
        self.selfAV = AttentionLayer(256, 8, positional_encoding=self_pe)

    def _visual_temporal(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 512) per-frame features → (B, T, 128)."""
        x = self.visualConv1D(self.visualTCN(frames.transpose(1, 2)))
        return x.transpose(1, 2)

    @staticmethod
    def _normalise(video: torch.Tensor) -> torch.Tensor:
        return (video / 255.0 - VIDEO_MEAN) / VIDEO_STD

    def forward_visual_frontend(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, 112, 112) gray 0–255 → (B, T, 128), exactly as the original.

        Quirk kept for parity: the B clips are laid end to end as ONE sequence of B·T frames for
        the 3D conv, so with B > 1 its 5-frame kernel mixes the last/first 2 frames of
        neighbouring clips. `encode_visual` keeps clips apart.
        """
        b, t, h, w = video.shape
        x = self._normalise(video).reshape(1, 1, b * t, h, w)
        return self._visual_temporal(self.visualFrontend(x).reshape(b, t, 512))

    def encode_visual(self, video: torch.Tensor) -> torch.Tensor:
        """Like `forward_visual_frontend`, but each clip is its own sequence (zero-padded at its
        ends, as a lone clip is). Equal to the original for B = 1."""
        b, t, h, w = video.shape
        x = self._normalise(video).reshape(b, 1, t, h, w)
        return self._visual_temporal(self.visualFrontend(x))

    def forward_audio_frontend(self, mfcc: torch.Tensor) -> torch.Tensor:
        """(B, 4T, 13) MFCC → (B, T, 128)."""
        return self.audioEncoder(mfcc.unsqueeze(1).transpose(2, 3))

    def forward_cross_attention(
        self, audio: torch.Tensor, visual: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(crossA2V(src=audio, tar=visual), crossV2A(src=visual, tar=audio))."""
        return self.crossA2V(src=audio, tar=visual), self.crossV2A(src=visual, tar=audio)

    def forward_audio_visual_backend(
        self, audio: torch.Tensor, visual: torch.Tensor
    ) -> torch.Tensor:
        """Concatenate a‖v (B, T, 256), self-attention, flatten to (B·T, 256) as the original."""
        x = torch.cat((audio, visual), dim=2)
        return self.selfAV(src=x, tar=x).reshape(-1, 256)

    def forward_audio_backend(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, T, 128) → (B·T, 128), the input of the auxiliary audio head `lossA`."""
        return audio.reshape(-1, 128)

    def forward_visual_backend(self, visual: torch.Tensor) -> torch.Tensor:
        """(B, T, 128) → (B·T, 128), the input of the auxiliary visual head `lossV`."""
        return visual.reshape(-1, 128)


class TalkNet(ASDModel):
    """TalkNet with the checkpoint's key tree and the common ASD model API.

    `lossA` and `lossV` are the auxiliary training heads (on the audio and visual cross-attention
    outputs); they are kept so the checkpoints load strictly but are not used for scoring.
    """

    def __init__(self, backbone: TalkNetBackbone | None = None) -> None:
        super().__init__()
        self.model = backbone if backbone is not None else TalkNetBackbone()
        self.lossAV = Head(256)
        self.lossA = Head(128)
        self.lossV = Head(128)

    def frame_logits(self, video: torch.Tensor, mfcc: torch.Tensor) -> torch.Tensor:
        """video (B, T, 112, 112) gray 0–255, mfcc (B, 4T, 13) → (B, T, 2) speaking logits.

        For B = 1 this is the original computation. For B > 1 each clip is encoded on its own
        (`encode_visual`), so a batch gives the same logits as its clips scored one by one;
        the original's `forward_visual_frontend` would let neighbouring clips leak into each
        other's first and last two frames.
        """
        audio = self.model.forward_audio_frontend(mfcc)
        visual = self.model.encode_visual(video)
        t = min(audio.shape[1], visual.shape[1])
        audio, visual = self.model.forward_cross_attention(audio[:, :t], visual[:, :t])
        fused = self.model.forward_audio_visual_backend(audio, visual)
        return self.lossAV(fused).reshape(video.shape[0], t, 2)


class SyncTalkNet(TalkNet):
    """Sync-TalkNet (the seed paper): TalkNet with the sinusoidal positional encoding added to
    the inputs of the cross-attention (`cross_pe`, d = 128) and of the self-attention
    (`self_pe`, d = 256) layers. Same parameters as TalkNet; with both flags off it *is* TalkNet.

    `pe_variant="vaswani"` (default) is the encoding the paper cites; "official" reproduces the
    table of the public SyncTalkNet code (zaocan666/SyncTalkNet `PositionalEncoder`), whose
    exponents are 2·k/d for the sine at even dim k and 2·(k+1)/d for the cosine at dim k+1,
    i.e. lower frequencies than the paper's. Use it for weights trained with that code; the
    `positional_emb.pe` buffers such checkpoints carry are ignored on load (they hold only that
    fixed table, truncated to 400 frames).
    """

    def __init__(
        self,
        cross_pe: bool = True,
        self_pe: bool = True,
        pe_variant: Literal["vaswani", "official"] = "vaswani",
    ) -> None:
        super().__init__(
            TalkNetBackbone(
                PositionalEncoding(128, pe_variant) if cross_pe else None,
                PositionalEncoding(256, pe_variant) if self_pe else None,
            )
        )
        self.cross_pe = cross_pe
        self.self_pe = self_pe
        self.pe_variant = pe_variant
        self.register_load_state_dict_pre_hook(_drop_official_pe_buffers)


def _drop_official_pe_buffers(
    module: nn.Module, state_dict: dict[str, torch.Tensor], prefix: str, *args: object
) -> None:
    """The SyncTalkNet code stores its fixed PE table as `…positional_emb.pe` buffers; we
    compute the table instead, so those keys are dropped before a strict load."""
    for key in [k for k in state_dict if k.startswith(prefix) and k.endswith("positional_emb.pe")]:
        del state_dict[key]
