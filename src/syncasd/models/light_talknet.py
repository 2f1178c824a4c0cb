"""TalkNet's attention backend on Light-ASD's encoders: Sync-TalkNet's positional-encoding
ablation at a CPU budget.

The seed (Sync-TalkNet) adds sinusoidal positional encoding (PE) to TalkNet's cross-attention
and self-attention inputs, so that attention, which is blind to order, can tell an audio frame
that lines up with the lips from one a few frames away. Training TalkNet itself (a ResNet-18
visual front end, no public weights here) is beyond 2 CPU cores; its backend is small. This
model keeps Light-ASD's encoders (128-d per frame, as TalkNet's) and replaces Light-ASD's BGRU
by TalkNet's backend, layer for layer (`talknet.AttentionLayer`): audio↔visual cross-attention
(d = 128, 8 heads), concatenation, audio-visual self-attention (d = 256, 8 heads), a linear
head. `light-sync-talknet` adds the PE to both attention stages as Sync-TalkNet does;
`light-talknet` is the same without it (the TalkNet control). `light-talknet-band` is the
control with each attention restricted to ±`ATTENTION_BAND` frames of the query.

Key layout: Light-ASD's (`model.visualEncoder.*`, `model.audioEncoder.*`, `lossV.FC`) plus
TalkNet's backend names (`model.crossA2V.*`, `model.crossV2A.*`, `model.selfAV.*`, `lossAV.FC`
of width 256), so the encoders start from Light-ASD checkpoints (`TrainConfig.init_partial`).
"""

from __future__ import annotations

import torch

from .light_asd import AudioEncoder, Frontends, LightASD, VisualEncoder
from .talknet import AttentionLayer, PositionalEncoding

ATTENTION_BAND = 25  # frames each side (±1 s at 25 fps) for `light-talknet-band`


class LightTalkNetBackbone(Frontends):
    """Light-ASD's encoders with TalkNet's cross- and self-attention backend."""

    def __init__(self, positional_encoding: bool = False, band: int | None = None) -> None:
        super().__init__()
        self.visualEncoder = VisualEncoder()
        self.audioEncoder = AudioEncoder()
        cross_pe = PositionalEncoding(128) if positional_encoding else None
        self_pe = PositionalEncoding(256) if positional_encoding else None
        self.crossA2V = AttentionLayer(128, 8, positional_encoding=cross_pe, band=band)
        self.crossV2A = AttentionLayer(128, 8, positional_encoding=cross_pe, band=band)
        self.selfAV = AttentionLayer(256, 8, positional_encoding=self_pe, band=band)

    def forward_audio_visual_backend(
        self, audio: torch.Tensor, visual: torch.Tensor
    ) -> torch.Tensor:
        """(B, T, 128) each → (B, T, 256): TalkNet's cross-attention both ways, a‖v,
        self-attention."""
        a = self.crossA2V(src=audio, tar=visual)
        v = self.crossV2A(src=visual, tar=audio)
        x = torch.cat((a, v), dim=2)
        return self.selfAV(src=x, tar=x)


class LightTalkNet(LightASD):
    """`LightASD`'s API (embeddings, backend logits, auxiliary visual head) with TalkNet's
    backend; `positional_encoding=True` is the Sync-TalkNet variant, `band` restricts each
    attention to ±band frames of the query."""

    backend_width = 256  # a‖v after the self-attention

    def __init__(self, positional_encoding: bool = False, band: int | None = None) -> None:
        super().__init__(LightTalkNetBackbone(positional_encoding, band))


__all__ = ["ATTENTION_BAND", "LightTalkNet", "LightTalkNetBackbone"]
