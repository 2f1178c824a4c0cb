"""The shared training losses on tiny cases whose values are worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from syncasd.losses import (
    cross_modal_contrastive_loss,
    derangement,
    euclidean_contrastive_loss,
    frame_cross_entropy,
)


def softplus(x: float) -> float:
    """−log σ(−x): the cross-entropy of logits (0, x) against class 0; against class 1 it is
    softplus(−x)."""
    return math.log(1.0 + math.exp(x))


# --- per-frame cross-entropy ----------------------------------------------------------------------


def test_frame_cross_entropy_by_hand():
    logits = torch.tensor([[[0.0, 0.0], [0.0, math.log(3.0)]]])
    labels = torch.tensor([[1, 0]])
    # frame 0: p1 = 1/2 → −log ½; frame 1: p0 = 1/(1+3) → −log ¼.
    expected = [math.log(2.0), math.log(4.0)]
    per_frame = frame_cross_entropy(logits, labels, reduction="none")
    assert per_frame.shape == (1, 2)
    torch.testing.assert_close(per_frame, torch.tensor([expected]))
    assert frame_cross_entropy(logits, labels).item() == pytest.approx(sum(expected) / 2)
    assert frame_cross_entropy(logits, labels, "sum").item() == pytest.approx(sum(expected))
    with pytest.raises(ValueError):
        frame_cross_entropy(logits, labels, "max")


# --- derangements -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_derangement_has_no_fixed_point(n):
    g = torch.Generator().manual_seed(n)
    for _ in range(20):
        perm = derangement(n, g)
        assert sorted(perm.tolist()) == list(range(n))
        assert all(p != i for i, p in enumerate(perm.tolist()))


def test_derangement_needs_two():
    with pytest.raises(ValueError):
        derangement(1)


# --- Sync-TalkNet / Sync-RothNet cross-modal contrastive loss -------------------------------------


def dot_backend(visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    """A backend f_b whose class-1 logit is V·A and class-0 logit is 0, per frame."""
    score = (visual * audio).sum(dim=-1)
    return torch.stack([torch.zeros_like(score), score], dim=-1)


# Three face tracks, T = 2 frames, 2-d embeddings. Tracks 0 and 1 have a speaking frame
# (Γ = {0, 1}), track 2 has none.
V = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]])
A = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [1.0, 0.0]]])
Y = torch.tensor([[1, 0], [0, 1], [0, 0]])

# Original pairs: scores V_i·A_i per frame and their cross-entropies against y_i.
#   track 0: scores (1, 1), labels (1, 0) → softplus(−1), softplus(1)
#   track 1: scores (0, 0), labels (0, 1) → log 2, log 2
#   track 2: scores (0, 1), labels (0, 0) → log 2, softplus(1)
ASD_TERMS = [softplus(-1), softplus(1), math.log(2), math.log(2), math.log(2), softplus(1)]
# Exchanged pairs (the only derangement of Γ = {0, 1} swaps them), all labelled 0:
#   (V_0, A_1): scores (1·0 + 0·1, 0·1 + 1·1) = (0, 1) → log 2, softplus(1)
#   (V_1, A_0): scores (2·1 + 0·0, 0·0 + 0·1) = (2, 0) → softplus(2), log 2
CONTRAST_TERMS = [math.log(2), softplus(1), softplus(2), math.log(2)]
ASD = sum(ASD_TERMS) / 6
CONTRAST = sum(CONTRAST_TERMS) / 4


def test_cross_modal_contrastive_loss_by_hand():
    out = cross_modal_contrastive_loss(dot_backend, V, A, Y)
    assert out.positives.tolist() == [0, 1]
    assert out.partners.tolist() == [1, 0]
    assert out.asd.item() == pytest.approx(ASD, abs=1e-6)
    assert out.contrast.item() == pytest.approx(CONTRAST, abs=1e-6)
    # The paper's L = BCE(orig) + β · BCE(exchanged, 0), β = 1.
    assert out.total.item() == pytest.approx(ASD + CONTRAST, abs=1e-6)
    assert out.total.item() == pytest.approx(2.04316, abs=1e-5)  # the same number, written out


def test_cross_modal_contrastive_loss_beta_and_pooled():
    half = cross_modal_contrastive_loss(dot_backend, V, A, Y, beta=0.5)
    assert half.total.item() == pytest.approx(ASD + 0.5 * CONTRAST, abs=1e-6)
    # The Sync-TalkNet code: one mean over the 6 original and 4 exchanged frames.
    pooled = cross_modal_contrastive_loss(dot_backend, V, A, Y, pooled=True)
    expected = (sum(ASD_TERMS) + sum(CONTRAST_TERMS)) / 10
    assert pooled.total.item() == pytest.approx(expected, abs=1e-6)


def test_cross_modal_contrastive_loss_three_positives_given_partners():
    y = torch.tensor([[1, 0], [0, 1], [1, 1]])  # Γ = {0, 1, 2}
    out = cross_modal_contrastive_loss(dot_backend, V, A, y, partners=torch.tensor([2, 0, 1]))
    assert out.partners.tolist() == [2, 0, 1]
    # (V_0, A_2): (0, 0); (V_1, A_0): (2, 0); (V_2, A_1): (0 + 1, 1 + 1) = (1, 2); all vs 0.
    terms = [math.log(2), math.log(2), softplus(2), math.log(2), softplus(1), softplus(2)]
    assert out.contrast.item() == pytest.approx(sum(terms) / 6, abs=1e-6)
    with pytest.raises(ValueError):  # index 1 maps to itself
        cross_modal_contrastive_loss(dot_backend, V, A, y, partners=torch.tensor([2, 1, 0]))


def test_cross_modal_contrastive_loss_random_partners_are_other_positives():
    torch.manual_seed(0)
    v, a = torch.randn(6, 3, 4), torch.randn(6, 3, 4)
    y = torch.tensor([[0, 1, 0], [0, 0, 0], [1, 1, 1], [0, 0, 1], [0, 0, 0], [1, 0, 0]])
    g = torch.Generator().manual_seed(1)
    for _ in range(10):
        out = cross_modal_contrastive_loss(dot_backend, v, a, y, generator=g)
        assert out.positives.tolist() == [0, 2, 3, 5]
        assert sorted(out.partners.tolist()) == [0, 2, 3, 5]
        assert all(
            p != q for p, q in zip(out.positives.tolist(), out.partners.tolist(), strict=True)
        )
        # Recompute the contrastive term from the pairs it reports.
        logits = dot_backend(v[out.positives], a[out.partners])
        expected = frame_cross_entropy(logits, torch.zeros(4, 3, dtype=torch.long))
        torch.testing.assert_close(out.contrast, expected)


def test_cross_modal_contrastive_loss_needs_two_positive_tracks():
    y = torch.tensor([[1, 0], [0, 0], [0, 0]])
    out = cross_modal_contrastive_loss(dot_backend, V, A, y)
    assert out.contrast.item() == 0.0
    assert out.partners.numel() == 0
    torch.testing.assert_close(out.total, frame_cross_entropy(dot_backend(V, A), y))


def test_cross_modal_contrastive_loss_shape_check():
    with pytest.raises(ValueError):
        cross_modal_contrastive_loss(dot_backend, V, A[:, :1], Y)


# --- SyncNet-style Euclidean contrastive loss with a margin ---------------------------------------


def test_euclidean_contrastive_loss_by_hand():
    x1 = torch.zeros(4, 2)
    x2 = torch.tensor([[3.0, 4.0], [0.3, 0.4], [3.0, 4.0], [0.0, 0.0]])  # d = 5, 0.5, 5, 0
    matched = torch.tensor([1, 0, 0, 0])
    # ½·d² for the matched pair, ½·max(m − d, 0)² for the others, m = 1:
    #   ½·25 = 12.5;  ½·0.5² = 0.125;  ½·0 = 0;  ½·1² = 0.5
    per_pair = euclidean_contrastive_loss(x1, x2, matched, margin=1.0, reduction="none")
    torch.testing.assert_close(per_pair, torch.tensor([12.5, 0.125, 0.0, 0.5]))
    assert euclidean_contrastive_loss(x1, x2, matched, 1.0).item() == pytest.approx(13.125 / 4)
    assert euclidean_contrastive_loss(x1, x2, matched, 1.0, "sum").item() == pytest.approx(13.125)
    # m = 2: ½·1.5² = 1.125 and ½·2² = 2; the d = 5 pair is still beyond the margin.
    per_pair = euclidean_contrastive_loss(x1, x2, matched, margin=2.0, reduction="none")
    torch.testing.assert_close(per_pair, torch.tensor([12.5, 1.125, 0.0, 2.0]))


def test_euclidean_contrastive_loss_gradient_is_finite_at_zero_distance():
    x1 = torch.ones(2, 3, requires_grad=True)
    x2 = torch.ones(2, 3)
    loss = euclidean_contrastive_loss(x1, x2, torch.tensor([0, 1]), margin=1.0)
    assert loss.item() == pytest.approx(0.25, abs=1e-5)  # (½·1² + 0) / 2; d is floored at 1e-6
    loss.backward()
    assert torch.isfinite(x1.grad).all()


def test_euclidean_contrastive_loss_gradient_directions():
    """Matched pairs are pulled together, unmatched pairs inside the margin pushed apart."""
    x1 = torch.tensor([[0.0, 0.0], [0.0, 0.0]], requires_grad=True)
    x2 = torch.tensor([[1.0, 0.0], [0.5, 0.0]])
    euclidean_contrastive_loss(x1, x2, torch.tensor([1, 0]), margin=1.0, reduction="sum").backward()
    assert x1.grad[0, 0] < 0  # a gradient step moves x1[0] towards x2[0] (+x)
    assert x1.grad[1, 0] > 0  # and x1[1] away from x2[1] (−x)


def test_misaligned_pairs_by_hand():
    # Γ = {0, 1}; T = 2 frames and min_shift 1: the only shift is k = 1 (the two frames swap).
    out = cross_modal_contrastive_loss(
        dot_backend, V, A, Y, misalign_beta=0.5, min_shift=1, shifts=torch.tensor([1, 1])
    )
    # (V_0, roll(A_0, 1)) = ([1,0]·[0,1], [0,1]·[1,0]) = (0, 0) → log 2, log 2
    # (V_1, roll(A_1, 1)) = ([2,0]·[1,1], [0,0]·[0,1]) = (2, 0) → softplus(2), log 2
    misalign = (3 * math.log(2) + softplus(2)) / 4
    assert out.misalign.item() == pytest.approx(misalign, abs=1e-6)
    assert out.contrast.item() == pytest.approx(CONTRAST, abs=1e-6)
    assert out.total.item() == pytest.approx(ASD + CONTRAST + 0.5 * misalign, abs=1e-6)
    assert out.shifts.tolist() == [1, 1]


def test_misalignment_shifts_reach_min_shift_both_ways():
    from syncasd.losses import misalignment_shifts

    g = torch.Generator().manual_seed(0)
    k = misalignment_shifts(1000, 20, 4, g)
    assert int(k.min()) == 4 and int(k.max()) == 16  # 20 − 16 = 4 the other way round
    assert misalignment_shifts(3, 7, 4).tolist() == [0, 0, 0]  # too short to shift 4 both ways
    # No shiftable track: the term is 0, not NaN.
    out = cross_modal_contrastive_loss(dot_backend, V, A, Y, misalign_beta=1.0, min_shift=4)
    assert out.misalign.item() == 0.0
