"""What the ASD architectures share: the common model API, heads, input normalisation."""

from __future__ import annotations

import torch
from torch import nn

# Gray-level normalisation of the face crops in the TalkNet family's visual front ends.
VIDEO_MEAN = 0.4161
VIDEO_STD = 0.1688


class ASDModel(nn.Module):
    """An active speaker detector on the originals' inputs.

    Subclasses implement `frame_logits(video, mfcc)`: video (B, T, 112, 112) gray 0–255 face
    crops at 25 fps, mfcc (B, 4T, 13) → (B, T, 2) speaking logits (class 1 = speaking).
    A model that `reads_mel` takes the 100-Hz log-mel beside the MFCCs, (B, 4T, 13 + 80)
    (`syncasd.audio.asd_features`).
    """

    reads_mel = False

    def frame_logits(self, video: torch.Tensor, mfcc: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, video: torch.Tensor, mfcc: torch.Tensor) -> torch.Tensor:
        return self.frame_logits(video, mfcc)

    @torch.no_grad()
    def predict(self, video: torch.Tensor, mfcc: torch.Tensor) -> torch.Tensor:
        """Speaking probability per frame, (B, T)."""
        return self.frame_logits(video, mfcc).softmax(dim=-1)[..., 1]


class Head(nn.Module):
    """Classifier head; named as in the original loss modules so checkpoint keys match."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.FC = nn.Linear(channels, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.FC(x)
