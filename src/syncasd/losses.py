"""Training losses shared by the ASD models.

- `frame_cross_entropy`: the routine per-frame speaking / not-speaking cross-entropy.
- `cross_modal_contrastive_loss`: the cross-modal contrastive learning of Sync-TalkNet and
  Sync-RothNet (Wuerkaixi et al., "Rethinking Audio-visual Synchronization for Active Speaker
  Detection", MLSP 2022, §4.1): the audio embeddings of positive face tracks are exchanged
  between tracks and the backend is trained to call these mismatched pairs "not speaking".
- `euclidean_contrastive_loss`: the SyncNet-style contrastive loss on the Euclidean distance
  between audio and visual embeddings, with a margin (Chung & Zisserman, "Out of time", ACCV
  2016, after Hadsell et al. 2006), as used by the multi-task ASD model (Zhang et al.,
  ActivityNet 2019, §2.4).

Everything speaks in the ASD models' terms: logits are (..., 2) with class 1 = speaking, labels
are integer 0/1 per frame.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

import torch
from torch.nn import functional as F

Reduction = Literal["mean", "sum", "none"]


def _reduce(x: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    if reduction == "none":
        return x
    raise ValueError(f"unknown reduction {reduction!r}")


def frame_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, reduction: Reduction = "mean"
) -> torch.Tensor:
    """Two-class cross-entropy per frame: logits (..., 2), labels (...) in {0, 1}.

    With two logits this is the binary cross-entropy of p = softmax(logits)[1], which is how the
    TalkNet family (and the Sync-TalkNet code) implement the papers' "BCE loss".
    """
    per_frame = F.cross_entropy(logits.reshape(-1, 2), labels.reshape(-1).long(), reduction="none")
    return _reduce(per_frame.reshape(labels.shape), reduction)


# --- Sync-TalkNet / Sync-RothNet: cross-modal contrastive learning ------------------------------


def derangement(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A uniformly random permutation of range(n) with no fixed point (n ≥ 2), as a LongTensor.

    Drawn by rejection like the Sync-TalkNet code (re-shuffle while any index maps to itself);
    about e ≈ 2.7 draws on average.
    """
    if n < 2:
        raise ValueError("a derangement needs at least 2 elements")
    identity = torch.arange(n)
    while True:
        perm = torch.randperm(n, generator=generator)
        if not bool((perm == identity).any()):
            return perm


class CrossModalLoss(NamedTuple):
    """Terms of the Sync-TalkNet / Sync-RothNet training loss."""

    total: torch.Tensor  # asd + beta * contrast (+ misalign_beta * misalign), or pooled mean
    asd: torch.Tensor  # BCE(f_b(V_i, A_i), y_i) over the original batch
    contrast: torch.Tensor  # BCE(f_b(V_γ, A_φ(γ)), 0) over the exchanged pairs; 0 if none
    positives: torch.Tensor  # Γ: indices of the tracks with at least one speaking frame
    partners: torch.Tensor  # φ(γ) for each γ in Γ (empty when |Γ| < 2)
    misalign: torch.Tensor | None = None  # BCE(f_b(V_γ, shift(A_γ, k_γ)), 0); None if off
    shifts: torch.Tensor | None = None  # k_γ (frames) per track of Γ, 0 where T < 2·min_shift


def misalignment_shifts(
    n: int, length: int, min_shift: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A circular shift k ∈ [min_shift, T − min_shift] frames for each of n tracks of T frames,
    so that the shift is at least `min_shift` frames both ways round; 0 (no shift) when the
    tracks are shorter than 2·min_shift."""
    if length < 2 * min_shift:
        return torch.zeros(n, dtype=torch.long)
    return torch.randint(min_shift, length - min_shift + 1, (n,), generator=generator)


def cross_modal_contrastive_loss(
    backend: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    visual: torch.Tensor,
    audio: torch.Tensor,
    labels: torch.Tensor,
    beta: float = 1.0,
    partners: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    pooled: bool = False,
    misalign_beta: float = 0.0,
    min_shift: int = 4,
    shifts: torch.Tensor | None = None,
) -> CrossModalLoss:
    """Cross-modal contrastive learning of Wuerkaixi et al. (MLSP 2022), §4.1:

        L = BCE(f_b(V_i, A_i), y_i) + β · BCE(f_b(V_γ, A_φ(γ)), 0),   β = 1 in the paper,

    where Γ is the set of face tracks whose labels y_i contain at least one speaking frame, and
    for every γ ∈ Γ the audio embeddings are taken from another positive track φ(γ) ∈ Γ,
    φ(γ) ≠ γ (a random derangement of Γ). The exchanged pairs are labelled "not speaking" at
    every frame. There is no temperature, margin or similarity in this loss: the "contrast" is
    the backend's own classification of mismatched pairs. With fewer than two positive tracks no
    pair can be formed and the second term is 0.

    backend: f_b, maps (visual (N, T, d), audio (N, T, d)) → logits (N, T, 2).
    visual, audio: (B, T, d) front-end embeddings; labels: (B, T) in {0, 1}.
    partners: φ as positions within Γ (a derangement of range(|Γ|)); random when None.
    pooled: False = the paper's equation (each term a mean over its own frames, summed with β).
        True = what the Sync-TalkNet code optimises: one cross-entropy mean over the original and
        the exchanged frames together (beta is then ignored), i.e. the exchanged frames weigh
        |Γ|/(B + |Γ|) of the loss.

    misalign_beta > 0 adds the same term for the *misaligned* embedding sequence, which the
    seed tests with (§3.1) but does not train on: each γ ∈ Γ with its own audio embeddings
    circularly shifted along time by k_γ ≥ `min_shift` frames both ways round (4 frames =
    160 ms > the 125 ms people notice), labelled 0 at every frame:
    + misalign_beta · BCE(f_b(V_γ, roll(A_γ, k_γ)), 0). `shifts` gives k_γ (else random).

    The original, exchanged and shifted pairs go through the backend in one batch, as in the
    Sync-TalkNet code (this matters only for a backend with batch statistics).
    """
    if visual.shape[:2] != audio.shape[:2] or labels.shape != visual.shape[:2]:
        raise ValueError(
            f"visual {tuple(visual.shape)}, audio {tuple(audio.shape)} and labels "
            f"{tuple(labels.shape)} must share (B, T)"
        )
    b = visual.shape[0]
    labels = labels.long()
    positives = torch.nonzero(labels.sum(dim=1) > 0).flatten().to(visual.device)
    n_pos = positives.numel()
    if partners is None:
        partners = derangement(n_pos, generator) if n_pos >= 2 else torch.empty(0, dtype=torch.long)
    else:
        partners = torch.as_tensor(partners, dtype=torch.long)
        if n_pos >= 2 and (
            partners.numel() != n_pos
            or sorted(partners.tolist()) != list(range(n_pos))
            or bool((partners == torch.arange(n_pos)).any())
        ):
            raise ValueError(f"partners must be a derangement of range({n_pos}), got {partners}")
    partners = partners.to(visual.device)

    v_parts, a_parts = [visual], [audio]
    if n_pos >= 2:
        v_parts.append(visual[positives])
        a_parts.append(audio[positives[partners]])
    n_swap = n_pos if n_pos >= 2 else 0
    shifted = None
    if misalign_beta > 0:
        t = visual.shape[1]
        if shifts is None:
            shifts = misalignment_shifts(n_pos, t, min_shift, generator)
        shifts = torch.as_tensor(shifts, dtype=torch.long).cpu()
        if shifts.numel() != n_pos:
            raise ValueError(f"shifts needs one value per positive track ({n_pos})")
        shifted = positives[(shifts > 0).to(positives.device)]
        pairs = zip(positives, shifts, strict=True)
        rolled = [audio[g].roll(int(k), dims=0) for g, k in pairs if k > 0]
        if rolled:
            v_parts.append(visual[shifted])
            a_parts.append(torch.stack(rolled))
    v_all, a_all = torch.cat(v_parts, dim=0), torch.cat(a_parts, dim=0)
    logits = backend(v_all, a_all)
    targets = torch.cat([labels, labels.new_zeros((v_all.shape[0] - b, labels.shape[1]))], dim=0)
    per_frame = frame_cross_entropy(logits, targets, reduction="none")
    asd = per_frame[:b].mean()
    zero = per_frame.new_zeros(())
    contrast = per_frame[b : b + n_swap].mean() if n_swap else zero
    misalign = None
    if shifted is not None:
        misalign = per_frame[b + n_swap :].mean() if shifted.numel() else zero
    if pooled:
        total = per_frame.mean()
    else:
        total = asd + beta * contrast + (misalign_beta * misalign if misalign is not None else 0)
    partner_tracks = positives[partners] if n_pos >= 2 else positives.new_empty(0)
    return CrossModalLoss(total, asd, contrast, positives, partner_tracks, misalign, shifts)


# --- multi-task ASD: SyncNet-style Euclidean contrastive loss with a margin ---------------------


def euclidean_contrastive_loss(
    x1: torch.Tensor,
    x2: torch.Tensor,
    matched: torch.Tensor,
    margin: float = 1.0,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Contrastive loss on the Euclidean distance d = ‖x1 − x2‖₂ of paired embeddings (..., d):

        L = ½ · [ y · d² + (1 − y) · max(margin − d, 0)² ]

    per pair, y = 1 for a matched (synchronized, speaking) pair and 0 otherwise: matched pairs
    are pulled together, unmatched ones pushed at least `margin` apart. This is the loss SyncNet
    is trained with (Chung & Zisserman 2016, eq. 1, E = 1/(2N) Σ …, from Hadsell et al. 2006);
    reduction "mean" over the pairs gives exactly SyncNet's E.

    The distance inside the hinge is sqrt(max(d², 1e-12)), so the gradient stays finite when
    two embeddings coincide; the value is unchanged for d > 1e-6.
    """
    y = matched.to(x1.dtype)
    d2 = (x1 - x2).pow(2).sum(dim=-1)
    d = d2.clamp_min(1e-12).sqrt()
    per_pair = 0.5 * (y * d2 + (1 - y) * F.relu(margin - d).pow(2))
    return _reduce(per_pair, reduction)
