"""IC-SyncNet (Park, Yun, Lee & Park, "Interpretable Convolutional SyncNet", 2024).

A convolutional sync-net: a visual encoder on five consecutive mouth images stacked on the
channel axis and an audio encoder on a 80 × 32 log-mel window, both embedding onto the unit
sphere; the probability that the images and the audio are in sync is (paper eq. 7)

    p = σ(cos(v, a) / τ),   τ a learnable temperature,

trained with the balanced BCE loss (eq. 8, `syncasd.losses.bbce_loss`).

What the paper fixes (§3.1, §3.3), and how it is built here:

- Blocks: Conv-BN-PReLU with a skip connection (Fig. 1a), stacked into both encoders.
  `ResBlock` is conv3×3 → BN → + x → PReLU (the activation after the sum, as in the Wav2Lip
  sync-net whose lineage the paper builds on); a stage starts with a plain Conv-BN-PReLU that
  changes the width.
- Anti-aliasing: wherever the visual encoder reduces resolution it is conv (stride 1) → BN →
  PReLU → BlurPool (binomial blur, then stride 2; Zhang 2019). The audio encoder uses strided
  convolutions (the paper only asks for BlurPool in the visual encoder).
- DropBlock: 2D in the audio encoder, 3D in the visual encoder (blocks span channels as well
  as height and width), "two DropBlock layers" as in the original DropBlock set-up (Ghiasi et
  al. put them on the last two groups of a ResNet): here after the last two stages of each
  encoder. Identity in eval mode and at drop rate 0. `set_drop_rate(p)`; the drop-and-tune
  phase is `drop_and_tune()`: drop rate 0, every parameter frozen but BatchNorm's.
- Inputs: five consecutive mouth crops (the lower half of the face box) stacked on channels,
  (B, 5·C, H, W), 0–255, frame-major (image 0's channels first); C = 3 (colour) by default,
  as in the colour sync-nets (PM, Wav2Lip) the paper follows — the extracted paper text loses
  the exact input size. Audio: (B, 1, 80, 32), the asymmetric window (0.4 s of audio for 0.2 s
  of images), from `syncasd.audio.log_mel` / `mel_window`.
- Output: unit-norm D-dim embeddings; `forward` gives the logit cos / τ.

Where the paper is silent (our choices, all in `ICSyncNetDims`): the layer widths and depths,
the mouth crop size (paper config 128 × 256, i.e. the lower half of a 256 × 256 face; the cpu
config 48 × 96, the Wav2Lip / VocaLiST size), the blur filter ([1, 2, 1]), the DropBlock block
size (3) and rate (0.1, DropBlock's own keep-prob 0.9), τ's initial value (0.07, as CLIP). The
encoders end Wav2Lip-style with a convolution whose kernel covers the whole remaining map (no
global pooling, so the embedding keeps where things are), then BN-PReLU and a linear layer to
D without activation, so cosines can be negative (the paper reports negatives at ≈ −0.18).

BlurPool and DropBlock live here rather than in `layers.py` only because this model is their
only user so far.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..audio import MEL_BINS, MEL_CONTEXT, MEL_SILENCE, MEL_WINDOW_COLUMNS

IMAGES = 5  # consecutive mouth images per visual window
HALF = IMAGES // 2


@dataclass(frozen=True)
class ICSyncNetDims:
    """Every size of an IC-SyncNet; `CONFIGS` holds the named ones."""

    image_channels: int = 3  # per image: 3 colour, 1 gray
    mouth_height: int = 128
    mouth_width: int = 256
    mel_bins: int = MEL_BINS
    mel_columns: int = MEL_WINDOW_COLUMNS
    embed_dim: int = 512
    visual_stem: int = 32
    visual_stem_kernel: int = 7
    # One stage per entry: (Conv-BN-PReLU + BlurPool ÷2) to the width, then residual blocks.
    visual_channels: tuple[int, ...] = (64, 128, 256, 512, 512)
    visual_blocks: tuple[int, ...] = (2, 2, 3, 2, 2)
    audio_stem: int = 32
    # One stage per entry: strided Conv-BN-PReLU (freq, time) to the width, then residual blocks.
    audio_channels: tuple[int, ...] = (64, 128, 256, 512)
    audio_strides: tuple[tuple[int, int], ...] = ((2, 1), (2, 2), (2, 2), (2, 2))
    audio_blocks: tuple[int, ...] = (2, 3, 3, 3)
    drop_rate: float = 0.1
    drop_block: int = 3
    blur_size: int = 3
    init_temperature: float = 0.07

    @property
    def visual_in(self) -> int:
        return IMAGES * self.image_channels

    def visual_map(self) -> tuple[int, int]:
        """Height and width of the visual feature map the final convolution covers."""
        h, w = self.mouth_height, self.mouth_width
        for _ in self.visual_channels:
            h, w = -(-h // 2), -(-w // 2)  # BlurPool output: ceil(n / 2)
        return h, w

    def audio_map(self) -> tuple[int, int]:
        h, w = self.mel_bins, self.mel_columns
        for sh, sw in self.audio_strides:
            h, w = (h - 1) // sh + 1, (w - 1) // sw + 1  # 3×3 conv, padding 1
        return h, w


CONFIGS: dict[str, ICSyncNetDims] = {
    # Paper-sized: 40.6 M parameters in the paper, 40.64 M here (depths chosen to match).
    "paper": ICSyncNetDims(),
    # CPU-sized: Wav2Lip-size mouth crops, narrow and shallow, for real-time scoring on a core:
    # 1.67 M parameters; one second of video (25 windows) against ±15 offsets in ≈ 0.18 s on
    # one (shared) core, ≈ 0.15 s at offset 0 only. The paper config: ≈ 4–6 s. Gray, because
    # its mouths are cut from the detect pipeline's gray 112 × 112 crops (`mouth_crops`).
    "cpu": ICSyncNetDims(
        image_channels=1,
        mouth_height=48,
        mouth_width=96,
        embed_dim=128,
        visual_stem=16,
        visual_stem_kernel=5,
        visual_channels=(24, 48, 96, 128),
        visual_blocks=(1, 1, 1, 1),
        audio_stem=16,
        audio_channels=(32, 64, 128, 128),
        audio_strides=((2, 1), (2, 2), (2, 2), (2, 2)),
        audio_blocks=(1, 1, 1, 1),
    ),
}


# --- building blocks ----------------------------------------------------------------------------


class ConvBNPReLU(nn.Sequential):
    """Conv (no bias: BN follows) → BN → PReLU."""

    def __init__(
        self,
        in_channels: int,
        channels: int,
        kernel: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | None = None,
    ) -> None:
        k = (kernel, kernel) if isinstance(kernel, int) else kernel
        pad = (k[0] // 2, k[1] // 2) if padding is None else padding
        super().__init__(
            nn.Conv2d(in_channels, channels, k, stride, pad, bias=False),
            nn.BatchNorm2d(channels),
            nn.PReLU(channels),
        )


class ResBlock(nn.Module):
    """Conv3×3 → BN → + x → PReLU (Fig. 1a: Conv-BN-PReLU with a skip connection)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.act = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)) + x)


class BlurPool(nn.Module):
    """Anti-aliased downsampling (Zhang, "Making convolutional networks shift-invariant again",
    2019): a depthwise binomial blur, then keep every `stride`-th sample.

    The filter is the outer product of the binomial row of length `size` ([1, 2, 1] for 3),
    normalised to sum 1; the input is reflect-padded by (size − 1) // 2 before and size // 2
    after, as in the antialiased-cnns code, so n samples become ceil(n / stride).
    """

    def __init__(self, channels: int, size: int = 3, stride: int = 2) -> None:
        super().__init__()
        if size < 1:
            raise ValueError("blur size must be ≥ 1")
        row = torch.tensor([math.comb(size - 1, i) for i in range(size)], dtype=torch.float32)
        kernel = torch.outer(row, row)
        kernel = kernel / kernel.sum()
        # Not persistent: a fixed function of `size`, no need to carry it in checkpoints.
        self.register_buffer(
            "kernel", kernel.expand(channels, 1, size, size).contiguous(), persistent=False
        )
        self.channels, self.size, self.stride = channels, size, stride
        self.pad = ((size - 1) // 2, size // 2, (size - 1) // 2, size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.size > 1:
            x = F.pad(x, self.pad, mode="reflect")
        return F.conv2d(x, self.kernel, stride=self.stride, groups=self.channels)


class DropBlock(nn.Module):
    """DropBlock (Ghiasi, Lin & Le, NeurIPS 2018) on (N, C, H, W) feature maps.

    dims = 2: block_size × block_size squares are dropped, the same squares in every channel
    (the DropBlock2D of the PyTorch `dropblock` package). dims = 3: the (C, H, W) map is one
    volume and block_size³ cubes are dropped, so blocks also span neighbouring channels (the
    paper's 3D DropBlock in the visual encoder, whose input channels are the five images).

    Block origins are drawn with γ = p · Π size / (b^d · Π (size − b + 1)) over the positions
    where a whole block fits (the paper's eq. 1), so about a share p of the units is dropped
    (a little less where blocks overlap); the kept units are scaled by count / kept. A block
    larger than the map is clipped to it. Identity in eval mode and when p = 0.
    """

    def __init__(self, drop_rate: float = 0.1, block_size: int = 3, dims: int = 2) -> None:
        super().__init__()
        if dims not in (2, 3):
            raise ValueError("DropBlock works on 2 or 3 dimensions")
        self.drop_rate, self.block_size, self.dims = float(drop_rate), block_size, dims

    def extra_repr(self) -> str:
        return f"drop_rate={self.drop_rate}, block_size={self.block_size}, dims={self.dims}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_rate <= 0.0:
            return x
        if x.dim() != 4:
            raise ValueError(f"DropBlock expects (N, C, H, W), got {tuple(x.shape)}")
        n = x.shape[0]
        sizes = tuple(x.shape[1:]) if self.dims == 3 else tuple(x.shape[2:])
        blocks = tuple(min(self.block_size, s) for s in sizes)
        valid = tuple(s - b + 1 for s, b in zip(sizes, blocks, strict=True))
        gamma = self.drop_rate * math.prod(sizes) / (math.prod(blocks) * math.prod(valid))
        seeds = (torch.rand((n, 1, *valid), device=x.device) < gamma).to(x.dtype)
        # A block's origin at i covers i … i + b − 1: pad b − 1 both sides and max-pool with
        # kernel b, so output j is dropped when any origin lies in j − b + 1 … j.
        pad = [p for b in reversed(blocks) for p in (b - 1, b - 1)]
        pool = F.max_pool3d if self.dims == 3 else F.max_pool2d
        dropped = pool(F.pad(seeds, pad), kernel_size=blocks, stride=1)
        keep = 1.0 - dropped
        if self.dims == 3:
            keep = keep.squeeze(1)  # (n, C, H, W)
        scale = keep.numel() / keep.sum().clamp_min(1.0)
        return x * keep * scale


def _stem_and_stages(
    in_channels: int,
    stem: int,
    stem_kernel: int,
    channels: tuple[int, ...],
    blocks: tuple[int, ...],
    strides: tuple[tuple[int, int], ...] | None,
    blur_size: int,
    drop: list[nn.Module],
) -> nn.Sequential:
    """Stem conv, then one stage per width: downsampling Conv-BN-PReLU, residual blocks, and a
    DropBlock after each of the last two stages (`drop`: the DropBlock modules, last two)."""
    layers: list[nn.Module] = [ConvBNPReLU(in_channels, stem, stem_kernel)]
    c = stem
    first_drop = len(channels) - len(drop)
    for i, (width, depth) in enumerate(zip(channels, blocks, strict=True)):
        if strides is None:  # visual: conv at full resolution, then blur and subsample
            stage: list[nn.Module] = [ConvBNPReLU(c, width, 3), BlurPool(width, blur_size, 2)]
        else:
            stage = [ConvBNPReLU(c, width, 3, strides[i])]
        stage += [ResBlock(width) for _ in range(depth)]
        if i >= first_drop:
            stage.append(drop[i - first_drop])
        layers.append(nn.Sequential(*stage))
        c = width
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """Stages → a convolution covering the whole remaining map → BN-PReLU → linear to D →
    L2 normalisation."""

    def __init__(
        self, trunk: nn.Sequential, channels: int, feature_map: tuple[int, int], dim: int
    ) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = ConvBNPReLU(channels, channels, feature_map, 1, 0)
        self.proj = nn.Linear(channels, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.trunk(x)).flatten(1)
        return F.normalize(self.proj(x), dim=1)


# --- the model ----------------------------------------------------------------------------------


class ICSyncNet(nn.Module):
    """IC-SyncNet: mouths (B, 5·C, H, W) 0–255 and log-mel (B, 1, 80, 32) → sync logit cos/τ."""

    def __init__(self, dims: ICSyncNetDims | None = None) -> None:
        super().__init__()
        self.dims = d = dims if dims is not None else CONFIGS["paper"]
        if len(d.visual_channels) < 2 or len(d.audio_channels) < 2:
            raise ValueError("each encoder needs at least two stages (two DropBlock layers)")
        v_drop = [DropBlock(d.drop_rate, d.drop_block, dims=3) for _ in range(2)]
        a_drop = [DropBlock(d.drop_rate, d.drop_block, dims=2) for _ in range(2)]
        self.visual = Encoder(
            _stem_and_stages(
                d.visual_in,
                d.visual_stem,
                d.visual_stem_kernel,
                d.visual_channels,
                d.visual_blocks,
                None,
                d.blur_size,
                v_drop,
            ),
            d.visual_channels[-1],
            d.visual_map(),
            d.embed_dim,
        )
        self.audio = Encoder(
            _stem_and_stages(
                1,
                d.audio_stem,
                3,
                d.audio_channels,
                d.audio_blocks,
                d.audio_strides,
                d.blur_size,
                a_drop,
            ),
            d.audio_channels[-1],
            d.audio_map(),
            d.embed_dim,
        )
        # τ = exp(log τ) stays positive whatever the optimiser does.
        self.log_temperature = nn.Parameter(torch.tensor(math.log(d.init_temperature)))

    @classmethod
    def from_config(cls, name: str = "paper", **overrides: Any) -> ICSyncNet:
        """A fresh model of a named configuration ("paper", "cpu"), sizes overridable."""
        if name not in CONFIGS:
            raise ValueError(f"unknown IC-SyncNet config {name!r}; known: {sorted(CONFIGS)}")
        return cls(replace(CONFIGS[name], **overrides))

    # --- checkpoints: plain tensors and numbers, so torch.load(..., weights_only=True) reads them

    def checkpoint(self) -> dict[str, Any]:
        """{"dims": …, "state_dict": …}: everything needed to rebuild the model."""
        return {"dims": asdict(self.dims), "state_dict": self.state_dict()}

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any]) -> ICSyncNet:
        """Rebuild from `checkpoint()` output (e.g. torch.load(path, weights_only=True))."""
        raw = dict(checkpoint["dims"])
        for key in ("visual_channels", "visual_blocks", "audio_channels", "audio_blocks"):
            raw[key] = tuple(raw[key])
        raw["audio_strides"] = tuple(tuple(s) for s in raw["audio_strides"])
        model = cls(ICSyncNetDims(**raw))
        model.load_state_dict(checkpoint["state_dict"])
        return model

    # --- embeddings and the sync probability ------------------------------------------------------

    @property
    def temperature(self) -> torch.Tensor:
        return self.log_temperature.exp()

    def visual_embeddings(self, mouths: torch.Tensor) -> torch.Tensor:
        """(B, 5·C, H, W) mouth images, 0–255, image-major on channels → (B, D) unit vectors."""
        d = self.dims
        expected = (d.visual_in, d.mouth_height, d.mouth_width)
        if mouths.dim() != 4 or tuple(mouths.shape[1:]) != expected:
            raise ValueError(
                f"mouths must be (B, {', '.join(map(str, expected))}), got {tuple(mouths.shape)}"
            )
        return self.visual(mouths.float() / 255.0)

    def audio_embeddings(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, 1, 80, 32) log-mel windows (`syncasd.audio.log_mel` scale) → (B, D) unit vectors."""
        if mel.dim() == 3:
            mel = mel.unsqueeze(1)
        expected = (1, self.dims.mel_bins, self.dims.mel_columns)
        if mel.dim() != 4 or tuple(mel.shape[1:]) != expected:
            raise ValueError(
                f"mel must be (B, 1, {expected[1]}, {expected[2]}), got {tuple(mel.shape)}"
            )
        return self.audio(mel.float())

    def similarity_logits(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """cos / τ of unit embeddings: visual (B, D) with audio (B, D) → (B,), or with several
        audio windows per image, audio (B, K, D) → (B, K) (a positive and its negatives)."""
        if audio.dim() == 3:
            return torch.einsum("bd,bkd->bk", visual, audio) / self.temperature
        return (visual * audio).sum(dim=-1) / self.temperature

    def forward(self, mouths: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """Sync logits cos(v, a) / τ, (B,); σ of it is the sync probability (eq. 7)."""
        return self.similarity_logits(self.visual_embeddings(mouths), self.audio_embeddings(mel))

    def sync_probability(self, mouths: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """p = σ(cos / τ), (B,)."""
        return torch.sigmoid(self(mouths, mel))

    # --- a whole track against every offset ------------------------------------------------------

    @torch.no_grad()
    def offset_cosines(
        self,
        mouths: torch.Tensor,
        mel: torch.Tensor,
        max_offset: int = 15,
        batch_size: int = 64,
        lead: int = 0,
    ) -> torch.Tensor:
        """Cosine similarity of every frame's visual window with the audio at every offset:
        (2·max_offset + 1, T), row k + max_offset for offset k.

        mouths: (T, C, H, W) the track's mouth crops, 0–255 (uint8 is fine). The window of
        frame t is the five images t − 2 … t + 2 (the first and last image repeated at the
        track's ends), so there is one window per frame.
        mel: (80, n) `log_mel` of the track's audio, sample 0 at the start of frame 0, or
        `lead` frames before it (e.g. a whole video's spectrogram, computed once for all its
        tracks: lead = the track's first frame in it).
        Offset k pairs frame t's images with the audio window of the images t + k − 2 …
        t + k + 2 (`syncasd.audio.mel_window(mel, t + k − 2)`): a peak at k > 0 means the sound
        that matches the lips comes k frames later (the audio lags the video). Audio outside
        the spectrogram reads as silence.

        Each visual window and each of the T + 2·max_offset audio windows is embedded once,
        `batch_size` at a time; the cosines are then one gather and product. Runs in the
        model's current mode: call `eval()` first for inference.
        """
        d = self.dims
        t_frames = mouths.shape[0]
        if mouths.dim() != 4 or tuple(mouths.shape[1:]) != (
            d.image_channels,
            d.mouth_height,
            d.mouth_width,
        ):
            raise ValueError(
                f"mouths must be (T, {d.image_channels}, {d.mouth_height}, {d.mouth_width}), "
                f"got {tuple(mouths.shape)}"
            )
        if mel.dim() != 2 or mel.shape[0] != d.mel_bins:
            raise ValueError(f"mel must be ({d.mel_bins}, n), got {tuple(mel.shape)}")
        device = self.log_temperature.device
        n_off = 2 * max_offset + 1
        if t_frames == 0:
            return torch.zeros(n_off, 0, device=device)

        window_index = image_windows(t_frames, mouths.device)  # (T, 5)
        visual = []
        for s in range(0, t_frames, batch_size):
            idx = window_index[s : s + batch_size]
            batch = mouths[idx].flatten(1, 2)  # (b, 5, C, H, W) → (b, 5·C, H, W)
            visual.append(self.visual_embeddings(batch.to(device)))
        v = torch.cat(visual)  # (T, D)

        windows = audio_windows(mel.to(device).float(), t_frames, max_offset, d.mel_columns, lead)
        audio = [
            self.audio_embeddings(windows[s : s + batch_size].unsqueeze(1))
            for s in range(0, windows.shape[0], batch_size)
        ]
        a = torch.cat(audio)  # (T + 2K, D); row j ↔ images centred on frame j − K
        # cos[k, t] = v[t] · a[t + k + K]  (k + K = row index)
        rows = torch.arange(n_off, device=device)[:, None] + torch.arange(t_frames, device=device)
        return torch.einsum("td,ktd->kt", v, a[rows])

    @torch.no_grad()
    def offset_probabilities(
        self,
        mouths: torch.Tensor,
        mel: torch.Tensor,
        max_offset: int = 15,
        batch_size: int = 64,
        lead: int = 0,
    ) -> torch.Tensor:
        """σ(cos / τ) of `offset_cosines`: (2·max_offset + 1, T) sync probabilities."""
        cos = self.offset_cosines(mouths, mel, max_offset, batch_size, lead)
        return torch.sigmoid(cos / self.temperature)

    # --- DropBlock and the drop-and-tune phase ----------------------------------------------------

    def drop_blocks(self) -> list[DropBlock]:
        return [m for m in self.modules() if isinstance(m, DropBlock)]

    def set_drop_rate(self, rate: float) -> None:
        """Set every DropBlock's drop rate (0 turns them into the identity; also for schedules)."""
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"drop rate must be in [0, 1), got {rate}")
        for m in self.drop_blocks():
            m.drop_rate = float(rate)

    def freeze_all_but_batchnorm(self) -> list[nn.Parameter]:
        """requires_grad only on the BatchNorm affine parameters (τ, PReLU slopes, convs and
        the projections frozen); returns the trainable parameters for the optimiser."""
        for p in self.parameters():
            p.requires_grad_(False)
        trainable: list[nn.Parameter] = []
        for m in self.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                for p in m.parameters(recurse=False):
                    p.requires_grad_(True)
                    trainable.append(p)
        return trainable

    def drop_and_tune(self) -> list[nn.Parameter]:
        """Enter the paper's drop-and-tune phase: drop rate 0 and only BatchNorm trainable.

        The BN running statistics keep updating in train mode, which is the point: they adapt
        to the inputs without DropBlock's shift. Returns the parameters to optimise.
        """
        self.set_drop_rate(0.0)
        return self.freeze_all_but_batchnorm()


def image_windows(frames: int, device: torch.device | None = None) -> torch.Tensor:
    """(T, 5) the images of each frame's visual window: t − 2 … t + 2, the first and last
    image repeated at the ends."""
    index = torch.arange(frames, device=device)[:, None]
    return (index + torch.arange(-HALF, HALF + 1, device=device)).clamp(0, frames - 1)


def audio_windows(
    mel: torch.Tensor,
    frames: int,
    max_offset: int = 0,
    columns: int = MEL_WINDOW_COLUMNS,
    lead: int = 0,
) -> torch.Tensor:
    """The 32-column windows of the images centred on frames −K … T − 1 + K: (T + 2K, 80, 32).

    Row j is `syncasd.audio.mel_window(mel, j − K − 2 + lead)` (five images starting two
    frames before the centre; `mel` starts `lead` frames before frame 0), out-of-range columns
    filled with `MEL_SILENCE`.
    """
    centres = torch.arange(-max_offset + lead, frames + max_offset + lead, device=mel.device)
    starts = window_starts(centres, columns)
    left = max(0, -int(starts.min()))
    right = max(0, int(starts.max()) + columns - mel.shape[1])
    padded = F.pad(mel, (left, right), value=MEL_SILENCE)
    return padded.unfold(1, columns, 1).permute(1, 0, 2)[starts + left]  # (n, 80, 32)


def window_starts(centres: torch.Tensor, columns: int = MEL_WINDOW_COLUMNS) -> torch.Tensor:
    """First 80-Hz log-mel column of the audio window of the five images centred on each frame
    of `centres`: floor(3.2·(c − 2)) − 8 for 32 columns (`audio.mel_window_start`); other
    widths centre alike."""
    context = MEL_CONTEXT + (columns - MEL_WINDOW_COLUMNS) // 2
    return torch.div(16 * (centres - HALF), 5, rounding_mode="floor") - context


def mel_windows_at_100hz(
    mel: torch.Tensor, centres: torch.Tensor, max_offset: int, columns: int = MEL_WINDOW_COLUMNS
) -> torch.Tensor:
    """`audio_windows` from a log-mel at 100 Hz: mel (B, 80, R) whose column r is centred on
    sample 160·r (`audio.asd_features`), R = 4T for T frames; `centres` (N,) frames within
    −K … T − 1 + K → (B, N, 80, 32).

    Column c at 80 Hz (centred on sample 200·c) lies at 1.25·c at 100 Hz: read linearly
    between its two neighbours (on validation tracks IC-SyncNet's logits from it correlate
    0.998 with those from the 80-Hz spectrogram). Columns outside the audio read as silence.
    Pure tensor arithmetic with a fixed padding, so ONNX exports it for any number of frames.
    """
    pad = 4 * (max_offset + HALF) + 16  # covers every window of centres within ±K of the frames
    padded = F.pad(mel, (pad, pad), value=MEL_SILENCE)
    at = 1.25 * (
        window_starts(centres, columns)[:, None] + torch.arange(columns, device=mel.device)
    )
    below = at.floor()
    weight = (at - below).to(mel.dtype)  # (N, columns)
    index = below.long() + pad
    low, high = padded[:, :, index], padded[:, :, index + 1]  # (B, 80, N, columns)
    return (low + weight * (high - low)).permute(0, 2, 1, 3)


def mouth_crops(crops: np.ndarray, dims: ICSyncNetDims) -> np.ndarray:
    """The mouths of gray face crops (T, 112, 112) uint8 (the official crop `detect` makes):
    their lower half, resized to the model's mouth size → (T, 1, H, W) uint8 (`mouth_images`).

    The official crop is the centre of the face box padded by 40 %, so its lower half runs
    from the nose to the chin: the mouth region the paper takes from the face box."""
    crops = np.asarray(crops)
    if crops.ndim != 3:
        raise ValueError(f"crops must be (T, H, W) gray, got {crops.shape}")
    if dims.image_channels != 1:
        raise ValueError("mouth_crops makes gray mouths; this model reads colour")
    mouths = mouth_images(torch.from_numpy(crops).float(), dims)
    return mouths.numpy().astype(np.uint8)[:, None]


def mouth_images(crops: torch.Tensor, dims: ICSyncNetDims) -> torch.Tensor:
    """(..., H0, W0) gray crops 0–255 → (..., H, W) their lower half resized to the model's
    mouth size by pixel area, rounded: what OpenCV's `INTER_AREA` makes of uint8 images, as
    two matrix products (so it runs inside a model and exports to ONNX)."""
    height, width = (int(n) for n in crops.shape[-2:])  # static sizes, also when traced
    rows = _area_weights(height - height // 2, dims.mouth_height)
    cols = _area_weights(width, dims.mouth_width)
    lower = crops[..., height // 2 :, :]
    return (torch.from_numpy(rows) @ lower @ torch.from_numpy(cols).T).round()


# A standard deviation under this many gray levels is not scaled up further: a flat image
# (a black frame, a lens cap) stays flat instead of having its noise blown up.
_MIN_CONTRAST = 4.0


def standardised(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """Each image (the last two dims) moved and scaled to gray mean `mean` and standard
    deviation `std`, clipped to 0–255.

    Why: a dim or low-contrast camera otherwise shows the lip-sync model mouths unlike any it
    was trained on (its training varied brightness by ±20 levels and contrast by ±20 %); mapped
    to its training clips' typical gray levels, a dim mouth moves as a lit one does."""
    centre = images.mean(dim=(-2, -1), keepdim=True)
    spread = images.std(dim=(-2, -1), keepdim=True).clamp_min(_MIN_CONTRAST)
    return (mean + (images - centre) * (std / spread)).clamp(0.0, 255.0)


@lru_cache(maxsize=8)
def _area_weights(size: int, out: int) -> np.ndarray:
    """(out, size) float32: output pixel i averages the input span [i·s, (i + 1)·s), s =
    size / out, each input pixel weighted by how much of it the span covers."""
    scale = size / out
    starts = np.arange(out)[:, None] * scale
    pixels = np.arange(size)[None, :]
    overlap = np.minimum(starts + scale, pixels + 1) - np.maximum(starts, pixels)
    return (np.clip(overlap, 0.0, None) / scale).astype(np.float32)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "CONFIGS",
    "BlurPool",
    "DropBlock",
    "ICSyncNet",
    "ICSyncNetDims",
    "ResBlock",
    "audio_windows",
    "image_windows",
    "mel_windows_at_100hz",
    "mouth_crops",
    "mouth_images",
    "parameter_count",
    "standardised",
    "window_starts",
]
