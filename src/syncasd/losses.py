"""Training losses shared by the ASD models.

- `frame_cross_entropy`: the routine per-frame speaking / not-speaking cross-entropy.
- `cross_modal_contrastive_loss`: the cross-modal contrastive learning of Sync-TalkNet and
  Sync-RothNet (Wuerkaixi et al., "Rethinking Audio-visual Synchronization for Active Speaker
  Detection", MLSP 2022, §4.1): the audio embeddings of positive face tracks are exchanged
  between tracks and the backend is trained to call these mismatched pairs "not speaking".
- `offset_ranking_loss`: a softmax over audio offsets of each window's mean speaking logit,
  target offset 0: the ranking that the sync-accuracy protocol (IC-SyncNet §5.1) reads, asked
  of an ASD backend without calling a one- or two-frame shift "not speaking".
- `euclidean_contrastive_loss`: the SyncNet-style contrastive loss on the Euclidean distance
  between audio and visual embeddings, with a margin (Chung & Zisserman, "Out of time", ACCV
  2016, after Hadsell et al. 2006), as used by the multi-task ASD model (Zhang et al.,
  ActivityNet 2019, §2.4). `syncnet_contrastive_loss` is the same function under SyncNet's name.
- `bbce_loss`: the balanced BCE of IC-SyncNet (Park et al., "Interpretable Convolutional
  SyncNet", 2024, eq. 8) on sync logits cos/τ: one positive pair, hard negatives (same clip,
  shifted audio) and easy negatives (other clips), the negatives' weights summing to one.
- `info_nce_loss`: InfoNCE (van den Oord et al. 2018) on cosine similarities over a batch of
  paired embeddings (in-batch negatives), or over each sample's own candidate audio windows;
  the paper's point of comparison for BBCE (eq. 9).

The ASD losses speak in the ASD models' terms: logits are (..., 2) with class 1 = speaking,
labels are integer 0/1 per frame. The sync-net losses take embeddings (InfoNCE, SyncNet) or
one logit cos/τ per (images, audio) pair (BBCE).
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
    dub: torch.Tensor | None = None  # BCE(f_b(V_γ, dub(A_γ)), 0); None if off


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
    misaligned: torch.Tensor | None = None,
    dub_beta: float = 0.0,
    dubbed: torch.Tensor | None = None,
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
    `misaligned` (B, T, d): the own audio's embeddings already shifted by the caller (in the
    waveform: no seam where a circular roll wraps round); then A_γ of it replaces the roll.

    dub_beta > 0 with `dubbed` (B, T, d), the embeddings of each track's audio dubbed (its
    speech replaced by another voice that starts and stops with it, `samples.dubbed`), adds
    + dub_beta · BCE(f_b(V_γ, dub(A_γ)), 0): a voice whose timing fits the lips but whose
    sounds do not is not this face speaking.

    The original, exchanged, shifted and dubbed pairs go through the backend in one batch, as
    in the Sync-TalkNet code (this matters only for a backend with batch statistics).
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
    if misalign_beta > 0 and misaligned is not None:
        if misaligned.shape != audio.shape:
            raise ValueError(f"misaligned {tuple(misaligned.shape)} must match audio's shape")
        shifted = positives
        if n_pos:
            v_parts.append(visual[positives])
            a_parts.append(misaligned[positives])
    elif misalign_beta > 0:
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
    n_misalign = sum(len(v) for v in v_parts) - b - n_swap
    use_dub = dub_beta > 0 and dubbed is not None
    if use_dub:
        if dubbed.shape != audio.shape:
            raise ValueError(f"dubbed {tuple(dubbed.shape)} must match audio's shape")
        v_parts.append(visual[positives])
        a_parts.append(dubbed[positives])
    v_all, a_all = torch.cat(v_parts, dim=0), torch.cat(a_parts, dim=0)
    logits = backend(v_all, a_all)
    targets = torch.cat([labels, labels.new_zeros((v_all.shape[0] - b, labels.shape[1]))], dim=0)
    per_frame = frame_cross_entropy(logits, targets, reduction="none")
    asd = per_frame[:b].mean()
    zero = per_frame.new_zeros(())
    contrast = per_frame[b : b + n_swap].mean() if n_swap else zero
    misalign = dub = None
    end = b + n_swap + n_misalign
    if shifted is not None:
        misalign = per_frame[b + n_swap : end].mean() if n_misalign else zero
    if use_dub:
        dub = per_frame[end:].mean() if n_pos else zero
    if pooled:
        total = per_frame.mean()
    else:
        total = asd + beta * contrast
        total = total + (misalign_beta * misalign if misalign is not None else 0)
        total = total + (dub_beta * dub if dub is not None else 0)
    partner_tracks = positives[partners] if n_pos >= 2 else positives.new_empty(0)
    return CrossModalLoss(total, asd, contrast, positives, partner_tracks, misalign, shifts, dub)


def offset_ranking_loss(
    backend: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    visual: torch.Tensor,
    audio: torch.Tensor,
    labels: torch.Tensor,
    max_shift: int = 6,
    min_speaking: int = 5,
) -> torch.Tensor | None:
    """Cross-entropy of offset 0 among offsets −m…m (m = `max_shift`) of each window.

    visual, audio: (B, T, D) embeddings of windows in sync; labels (B, T). Offset k pairs the
    lips of frame t with the audio embedding of frame t + k, for the frames m … T−m−1 only, so
    every offset reads the window's own audio (no padding, no seam). A window's score at k is
    its mean speaking margin (logit 1 − logit 0) over its speaking frames there; windows with
    fewer than `min_speaking` of them are left out, and None is returned when none is left.
    """
    t = labels.shape[1]
    m = max_shift
    n = t - 2 * m
    if m < 1 or n < 1:
        return None
    speaking = labels[:, m : t - m].bool()
    keep = speaking.sum(1) >= min_speaking
    if not keep.any():
        return None
    v, a, weights = visual[keep][:, m : t - m], audio[keep], speaking[keep].float()
    shifts = 2 * m + 1
    # All offsets in one backend call: (shifts · kept windows, n, D).
    a = torch.cat([a[:, m + k : m + k + n] for k in range(-m, m + 1)])
    logits = backend(v.repeat(shifts, 1, 1), a).view(shifts, len(v), n, 2)
    margin = logits[..., 1] - logits[..., 0]
    scores = (margin * weights).sum(-1) / weights.sum(-1)  # (shifts, kept)
    target = torch.full((len(v),), m, dtype=torch.long, device=scores.device)
    return F.cross_entropy(scores.T, target)


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


# SyncNet (Chung & Zisserman 2016) is trained with exactly this loss: the name a sync-net
# trainer looks for, not a second implementation.
syncnet_contrastive_loss = euclidean_contrastive_loss


# --- IC-SyncNet: balanced BCE and InfoNCE ---------------------------------------------------------


def bbce_loss(
    positive: torch.Tensor,
    hard: torch.Tensor | None = None,
    easy: torch.Tensor | None = None,
    easy_weight: float | None = None,
    reduction: Reduction = "mean",
    hard_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Balanced binary cross-entropy of IC-SyncNet (Park et al. 2024, eq. 8) on sync logits
    z = cos(v, a) / τ, so p = σ(z) (eq. 7):

        L_i = −½ · [ log p_i0 + (1 − w)/N_h · Σ_j log(1 − p_ij) + w/N_e · Σ_k log(1 − p_ik) ]

    positive: (B,) logits of the in-sync pairs (v_i, a_i0).
    hard: (B, N_h) logits of v_i with audio from the same clip at other offsets, or None.
    easy: (B, N_e) logits of v_i with audio from other clips, or None.
    easy_weight: w, the total weight of the easy negatives; the hard ones share 1 − w, so the
        negatives weigh as much as the positive (a balanced dataset). None = proportional,
        w = N_e / (N_h + N_e): every negative weighs 1/(N_h + N_e), as in InfoNCE (the
        paper's Appendix C scheme). Without easy negatives w is 0; without hard ones, 1.

    reduction: over the B samples ("mean" = the paper's average over the mini-batch).
    hard_mask: (B, N_h) bool, which hard negatives exist (offsets that fall outside a short
        clip do not); the mean runs over those, and w counts them per sample. Every sample
        needs at least one negative.
    log σ(z) and log(1 − σ(z)) = log σ(−z) are computed stably from the logits.

    The ½ is the paper's (its Appendix B drops it "for simplicity"). The extracted paper text
    loses eq. 8's symbols; this is our reading of "w is the weight given to the easy negatives"
    and "the weights given to the negatives sum to one". In the other possible reading, a
    per-negative weight ω for easy against 1 for hard, normalised by N_h + ω·N_e, the same
    loss is w = ω·N_e / (N_h + ω·N_e); ω = 1 is the proportional default here.
    """
    if positive.dim() != 1:
        raise ValueError(f"positive logits must be (B,), got {tuple(positive.shape)}")
    b = positive.shape[0]
    empty = positive.new_zeros(b, 0)
    hard = empty if hard is None else hard
    easy = empty if easy is None else easy
    for name, x in (("hard", hard), ("easy", easy)):
        if x.dim() != 2 or x.shape[0] != b:
            raise ValueError(f"{name} logits must be (B, N) with B = {b}, got {tuple(x.shape)}")
    n_h, n_e = hard.shape[1], easy.shape[1]
    if hard_mask is None:
        hard_mask = torch.ones_like(hard, dtype=torch.bool)
    elif hard_mask.shape != hard.shape:
        raise ValueError(f"hard_mask {tuple(hard_mask.shape)} differs from hard logits")
    counts = hard_mask.sum(dim=1).to(positive.dtype)  # hard negatives per sample
    if bool((counts + n_e == 0).any()):
        raise ValueError("bbce_loss needs at least one negative per positive")
    if easy_weight is None:  # per sample: every negative it has weighs the same
        w = n_e / (counts + n_e)
    else:
        w = float(easy_weight)
        if not 0.0 <= w <= 1.0:
            raise ValueError(f"easy_weight must be in [0, 1], got {w}")
        if (n_e == 0 and w > 0) or (n_h == 0 and w < 1):
            raise ValueError(
                f"easy_weight {w} puts weight on negatives that are absent (N_h={n_h}, N_e={n_e})"
            )
    pos_term = F.logsigmoid(positive)
    hard_sum = (F.logsigmoid(-hard) * hard_mask).sum(dim=1)
    hard_term = hard_sum / counts.clamp(min=1) * (1 - w) if n_h else 0.0
    easy_term = F.logsigmoid(-easy).mean(dim=1) * w if n_e else 0.0
    per_sample = -0.5 * (pos_term + hard_term + easy_term)
    return _reduce(per_sample, reduction)


def offset_cross_entropy(
    logits: torch.Tensor, valid: torch.Tensor | None = None, reduction: Reduction = "mean"
) -> torch.Tensor:
    """InfoNCE over audio offsets: (N, 2K + 1) sync logits of one lip window at offsets
    −K … K, the centre (offset 0) the positive, the other offsets its negatives:

        L_n = −log( exp(z_n,K) / Σ_k exp(z_n,k) ),  the sum over the valid offsets only

    valid: (N, 2K + 1) bool, the offsets whose audio exists (default: all); the centre must be.
    """
    if logits.dim() != 2 or logits.shape[1] % 2 == 0:
        raise ValueError(f"logits must be (N, 2K + 1), got {tuple(logits.shape)}")
    centre = logits.shape[1] // 2
    if valid is not None:
        if valid.shape != logits.shape:
            raise ValueError(f"valid {tuple(valid.shape)} differs from logits")
        if not bool(valid[:, centre].all()):
            raise ValueError("offset 0 (the positive) must be valid for every row")
        logits = logits.masked_fill(~valid, float("-inf"))
    per_row = torch.logsumexp(logits, dim=1) - logits[:, centre]
    return _reduce(per_row, reduction)


def info_nce_loss(
    visual: torch.Tensor,
    audio: torch.Tensor,
    temperature: float | torch.Tensor,
    symmetric: bool = False,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """InfoNCE (van den Oord et al. 2018) on cosine similarities s = cos(v, a) / τ.

    visual (B, D) with audio (B, D): the batch's pairs (v_i, a_i) are the positives and every
    other a_j of the batch a negative for v_i:

        L_i = −log( exp(s_ii) / Σ_j exp(s_ij) )          (cross-entropy, target i)

    visual (B, D) with audio (B, 1 + N, D): each v_i against its own candidates, index 0 the
    positive and 1 … N its negatives (the paper's eq. 9, e.g. N hard negatives from the same
    clip): L_i = −log( exp(s_i0) / Σ_n exp(s_in) ).

    symmetric (in-batch form only): also the audio → visual direction, averaged (CLIP).
    Embeddings are L2-normalised here, so unnormalised ones give the same loss. `temperature`
    may be a tensor (a learnable τ gets its gradient).
    """
    v = F.normalize(visual, dim=-1)
    a = F.normalize(audio, dim=-1)
    if a.dim() == 3:
        if symmetric:
            raise ValueError("symmetric InfoNCE needs in-batch pairs, audio (B, D)")
        if a.shape[0] != v.shape[0] or a.shape[1] < 2:
            raise ValueError(f"audio must be (B, 1 + N, D), N ≥ 1, got {tuple(audio.shape)}")
        logits = torch.einsum("bd,bnd->bn", v, a) / temperature
        targets = torch.zeros(v.shape[0], dtype=torch.long, device=v.device)
        return _reduce(F.cross_entropy(logits, targets, reduction="none"), reduction)
    if a.shape != v.shape:
        raise ValueError(f"visual {tuple(visual.shape)} and audio {tuple(audio.shape)} differ")
    logits = v @ a.T / temperature
    targets = torch.arange(v.shape[0], device=v.device)
    per_sample = F.cross_entropy(logits, targets, reduction="none")
    if symmetric:
        per_sample = 0.5 * (per_sample + F.cross_entropy(logits.T, targets, reduction="none"))
    return _reduce(per_sample, reduction)
