"""RothNet and Sync-RothNet (Wuerkaixi et al., "Rethinking Audio-visual Synchronization for Active
Speaker Detection", MLSP 2022, §3, §4 and supplementary §0.2).

RothNet is that paper's name for the AVA-ActiveSpeaker baseline of Roth et al. (2019): it "takes
11 consecutive face frames and the corresponding audio as input, extracts audio and visual
features respectively, and concatenates them" for a binary classifier that "makes prediction for
the central frame"; it has no attention (nor any other module) across time steps. Sync-RothNet is
the same network trained with the paper's cross-modal contrastive learning (§4.1, see
`syncasd.losses.cross_modal_contrastive_loss`); it has no positional encoding because there is no
attention to put it in (supplementary §0.2).

What the seed paper fixes, and this module follows exactly: the 11-frame window, per-modality
embeddings, concatenation, a binary classifier for the centre frame, no temporal model. What it
does not give (Roth et al.'s layer-by-layer design is not in the seeds) and is our choice:

- Visual stream: the 11 gray 112×112 crops as the 11 input channels of a 2D CNN (early fusion
  of the window; computed as an (11, 3, 3) Conv3d over the clip), then a MobileNet-v1-style
  stack of depthwise-separable convolutions (32 → 512 channels, 112 → 7 pixels), global
  average pool, FC → 128.
- Audio stream: the MFCC rows of the same 11 frames (4 per frame: 44 rows × 13) as a one-channel
  image, a smaller depthwise-separable stack (32 → 256), global average pool, FC → 128.
- Classifier: concat (256) → FC 128 → ReLU → FC 2 (`lossAV.FC`, as in the TalkNet family).
- Sequences: to give one logit pair per frame for a (B, T) clip, the 11-frame window slides over
  the clip with stride 1 and the clip is edge-padded by 5 frames at each end (an out-of-track
  frame is replaced by the nearest frame of the track, video and its 4 MFCC rows alike), so any
  T ≥ 1 works, including T < 11.
"""

from __future__ import annotations

import torch
from torch import nn

from ..losses import CrossModalLoss, cross_modal_contrastive_loss, frame_cross_entropy
from ..timebase import ROWS_PER_FRAME
from .layers import VIDEO_MEAN, VIDEO_STD, ASDModel, Head

WINDOW = 11  # frames per RothNet window
HALF = WINDOW // 2  # 5 frames either side of the centre frame


def init_conv_bn(module: nn.Module) -> None:
    """He init for convolutions (fan-out, as torchvision's ResNets; fan-in for depthwise ones,
    whose fan-out would count every channel), unit/zero BatchNorm affine. PyTorch's default
    conv init shrinks activations through deep stacks."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            mode = "fan_in" if m.groups > 1 else "fan_out"
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def edge_pad(x: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """(B, T, *rest) → (B, before + T + after, *rest), the first/last step repeated."""
    return torch.cat([x[:, :1]] * before + [x] + [x[:, -1:]] * after, dim=1)


def frame_windows(x: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """(B, T, *rest) → (B, T, before + 1 + after, *rest): for every frame t the steps
    t − before … t + after, the sequence edge-padded (first/last step repeated).

    Written with static slices only, so an ONNX export keeps T dynamic.
    """
    n = before + after
    if n == 0:
        return x.unsqueeze(2)
    padded = edge_pad(x, before, after)
    steps = [padded[:, k : k - n] for k in range(n)] + [padded[:, n:]]
    return torch.stack(steps, dim=2)


def align_lengths(video: torch.Tensor, mfcc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Trim (B, T, H, W) video and (B, R, 13) MFCC to a common T frames and 4T rows.

    Common-API inputs (R = 4T) pass through untouched, with no op recorded in an ONNX trace.
    """
    t = min(video.shape[1], mfcc.shape[1] // ROWS_PER_FRAME)
    if t == 0:
        raise ValueError(
            f"need at least one frame and {ROWS_PER_FRAME} MFCC rows, got video "
            f"{tuple(video.shape)} and mfcc {tuple(mfcc.shape)}"
        )
    if video.shape[1] != t:
        video = video[:, :t]
    if mfcc.shape[1] != t * ROWS_PER_FRAME:
        mfcc = mfcc[:, : t * ROWS_PER_FRAME]
    return video, mfcc


def mfcc_windows(mfcc: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """(B, 4T, 13) MFCC → (B, T, 4·(before + 1 + after), 13): the rows of frames
    t − before … t + after for every frame t, edge-padded by whole frames."""
    b, _, c = mfcc.shape
    frames = mfcc.reshape(b, -1, ROWS_PER_FRAME, c)  # (B, T, 4, 13)
    windows = frame_windows(frames, before, after)  # (B, T, k, 4, 13)
    return windows.flatten(2, 3)


class SeparableConv(nn.Module):
    """MobileNet-v1 unit: depthwise 3×3 (stride s) → BN → ReLU → pointwise 1×1 → BN → ReLU."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int | tuple[int, int] = 1
    ) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(
            in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False
        )
        self.bn_depthwise = nn.BatchNorm2d(in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn_pointwise = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn_depthwise(self.depthwise(x)))
        return self.relu(self.bn_pointwise(self.pointwise(x)))


class VisualEncoder(nn.Module):
    """Edge-padded clip (B, 1, T + 10, 112, 112) normalised gray → (B, T, 128): one embedding
    per 11-frame window.

    The first conv sees the whole window: an (11, 3, 3) kernel with no temporal padding is a 2D
    conv taking the window's 11 frames as its input channels (early fusion), evaluated for every
    window at once without copying the clip 11 times. Everything after it is per window.
    """

    def __init__(self, frames: int = WINDOW, embed_dim: int = 128) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(1, 32, (frames, 3, 3), (1, 2, 2), (0, 1, 1), bias=False),  # 112 → 56
            nn.BatchNorm3d(32),
            nn.ReLU(),
        )
        self.blocks = nn.Sequential(
            SeparableConv(32, 64),
            SeparableConv(64, 128, 2),  # 28
            SeparableConv(128, 128),
            SeparableConv(128, 256, 2),  # 14
            SeparableConv(256, 256),
            SeparableConv(256, 512, 2),  # 7
            SeparableConv(512, 512),
        )
        self.fc = nn.Linear(512, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        x = self.stem(x)  # (B, 32, T, 56, 56)
        x = x.transpose(1, 2).flatten(0, 1)  # (B·T, 32, 56, 56)
        x = self.fc(self.blocks(x).mean(dim=(2, 3)))
        return x.reshape(b, -1, x.shape[-1])


class AudioEncoder(nn.Module):
    """(N, 1, 13, 44) MFCC window (coefficients × time) → (N, 128)."""

    def __init__(self, embed_dim: int = 128) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, 32, 3, 1, 1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(),
        )
        self.blocks = nn.Sequential(
            SeparableConv(32, 64),
            SeparableConv(64, 128, 2),  # 7 × 22
            SeparableConv(128, 128),
            SeparableConv(128, 256, 2),  # 4 × 11
            SeparableConv(256, 256),
        )
        self.fc = nn.Linear(256, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.stem(x)).mean(dim=(2, 3)))


class RothNet(ASDModel):
    """RothNet with the common ASD API; trained with the per-frame cross-entropy (`loss`)."""

    def __init__(self, embed_dim: int = 128, hidden: int = 128) -> None:
        super().__init__()
        self.visualEncoder = VisualEncoder(WINDOW, embed_dim)
        self.audioEncoder = AudioEncoder(embed_dim)
        self.fusion = nn.Sequential(nn.Linear(2 * embed_dim, hidden), nn.ReLU())
        self.lossAV = Head(hidden)
        init_conv_bn(self)

    # --- the two stages the contrastive loss needs apart: f_v, f_a and the backend f_b -------

    def embed(self, video: torch.Tensor, mfcc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """video (B, T, 112, 112) gray 0–255, mfcc (B, 4T, 13) → visual V and audio A embeddings,
        each (B, T, 128): one per 11-frame window centred on each frame."""
        video, mfcc = align_lengths(video, mfcc)
        b = video.shape[0]
        x = (video / 255.0 - VIDEO_MEAN) / VIDEO_STD
        visual = self.visualEncoder(edge_pad(x, HALF, HALF).unsqueeze(1))
        audio_windows = mfcc_windows(mfcc, HALF, HALF)  # (B, T, 44, 13)
        a = audio_windows.reshape(-1, 1, WINDOW * ROWS_PER_FRAME, mfcc.shape[2]).transpose(2, 3)
        audio = self.audioEncoder(a)
        return visual, audio.reshape(b, -1, audio.shape[-1])

    def backend(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """f_b: concatenated (V, A) → (B, T, 2) logits for each window's centre frame."""
        return self.lossAV(self.fusion(torch.cat([visual, audio], dim=-1)))

    # --- the common ASD API ----------------------------------------------------------------

    def frame_logits(self, video: torch.Tensor, mfcc: torch.Tensor) -> torch.Tensor:
        """video (B, T, 112, 112) gray 0–255, mfcc (B, 4T, 13) → (B, T, 2) speaking logits."""
        return self.backend(*self.embed(video, mfcc))

    # --- training --------------------------------------------------------------------------

    def loss_terms(
        self, video: torch.Tensor, mfcc: torch.Tensor, labels: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """RothNet is trained with the plain cross-entropy of the centre frame of each window."""
        logits = self.frame_logits(video, mfcc)
        ce = frame_cross_entropy(logits, labels[:, : logits.shape[1]])
        return {"total": ce, "asd": ce}

    def loss(self, video: torch.Tensor, mfcc: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Training loss on a batch of face tracks; labels (B, T) in {0, 1}."""
        return self.loss_terms(video, mfcc, labels)["total"]


class SyncRothNet(RothNet):
    """Sync-RothNet: RothNet trained with cross-modal contrastive learning (paper §4.1, eq. of L):

        L = BCE(f_b(V_i, A_i), y_i) + β · BCE(f_b(V_γ, A_φ(γ)), 0),  β = 1,

    the audio embeddings of every positive track γ (≥ 1 speaking frame) being exchanged with
    those of another positive track φ(γ) ≠ γ of the batch. The paper gives no temperature,
    margin or similarity for this loss; β is its only weight. Same parameters as RothNet, so the
    two load each other's weights; only `loss` differs. `pooled=True` gives the Sync-TalkNet
    code's single mean over original and exchanged frames instead of the paper's sum.
    """

    def __init__(
        self, embed_dim: int = 128, hidden: int = 128, beta: float = 1.0, pooled: bool = False
    ) -> None:
        super().__init__(embed_dim, hidden)
        self.beta = beta
        self.pooled = pooled

    def contrastive_loss(
        self,
        video: torch.Tensor,
        mfcc: torch.Tensor,
        labels: torch.Tensor,
        partners: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> CrossModalLoss:
        visual, audio = self.embed(video, mfcc)
        return cross_modal_contrastive_loss(
            self.backend,
            visual,
            audio,
            labels[:, : visual.shape[1]],
            beta=self.beta,
            partners=partners,
            generator=generator,
            pooled=self.pooled,
        )

    def loss_terms(
        self,
        video: torch.Tensor,
        mfcc: torch.Tensor,
        labels: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        out = self.contrastive_loss(video, mfcc, labels, generator=generator)
        return {"total": out.total, "asd": out.asd, "contrast": out.contrast}

    def loss(
        self,
        video: torch.Tensor,
        mfcc: torch.Tensor,
        labels: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        return self.loss_terms(video, mfcc, labels, generator)["total"]
