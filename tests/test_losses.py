"""The shared training losses on tiny cases whose values are worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from syncasd.losses import (
    bbce_loss,
    cross_modal_contrastive_loss,
    derangement,
    euclidean_contrastive_loss,
    frame_cross_entropy,
    info_nce_loss,
    offset_cross_entropy,
    offset_ranking_loss,
    syncnet_contrastive_loss,
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


# --- SyncNet contrastive loss -------------------------------------------------------------------


def test_syncnet_contrastive_loss_is_the_euclidean_one():
    assert syncnet_contrastive_loss is euclidean_contrastive_loss
    # SyncNet's E = 1/(2N) Σ y·d² + (1 − y)·max(m − d, 0)²: d = 5 matched → 25, d = 0.5
    # unmatched, m = 1 → 0.25; E = (25 + 0.25) / (2·2) = 6.3125.
    x1 = torch.zeros(2, 2)
    x2 = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    loss = syncnet_contrastive_loss(x1, x2, torch.tensor([1, 0]), margin=1.0)
    assert loss.item() == pytest.approx(6.3125)


# --- IC-SyncNet: balanced BCE (eq. 8) -----------------------------------------------------------

# One sample. Logits z = cos/τ; log σ(0) = −log 2, log(1 − σ(log 3)) = log(1/4),
# log(1 − σ(−log 3)) = log(3/4).
POS = torch.tensor([0.0])
HARD = torch.tensor([[0.0, math.log(3.0)]])
EASY = torch.tensor([[-math.log(3.0)]])


def test_bbce_by_hand():
    # w = 0.25: hard negatives share 0.75 (0.375 each), the easy one has 0.25:
    # L = −½·[−log 2 + 0.375·(−log 2) + 0.375·(−log 4) + 0.25·log(3/4)]
    #   = −½·[−0.693147 − 0.259930 − 0.519860 − 0.071921] = 0.772429
    expected = -0.5 * (
        -math.log(2) + 0.375 * -math.log(2) + 0.375 * -math.log(4) + 0.25 * math.log(0.75)
    )
    assert expected == pytest.approx(0.772429, abs=1e-6)
    assert bbce_loss(POS, HARD, EASY, easy_weight=0.25).item() == pytest.approx(expected)


def test_bbce_proportional_weights_by_default():
    # w = N_e/(N_h + N_e) = 1/3: each of the three negatives weighs 1/3.
    # L = −½·[−log 2 + (−log 2 − log 4 + log(3/4))/3] = 0.741094
    expected = -0.5 * (-math.log(2) + (-math.log(2) - math.log(4) + math.log(0.75)) / 3)
    assert expected == pytest.approx(0.741094, abs=1e-6)
    assert bbce_loss(POS, HARD, EASY).item() == pytest.approx(expected)


def test_bbce_hard_only_and_easy_only():
    # Hard only (w = 0): L = −½·[−log 2 + (−log 2 − log 4)/2] = ½·(log 2 + 1.5·log 2) = 1.25·log 2
    assert bbce_loss(POS, HARD).item() == pytest.approx(1.25 * math.log(2))
    # Easy only (w = 1): L = −½·[−log 2 + log(3/4)] = ½·log(8/3)
    assert bbce_loss(POS, easy=EASY).item() == pytest.approx(0.5 * math.log(8 / 3))
    with pytest.raises(ValueError):
        bbce_loss(POS, HARD, easy_weight=0.5)  # weight on absent easy negatives
    with pytest.raises(ValueError):
        bbce_loss(POS)
    with pytest.raises(ValueError):
        bbce_loss(POS, HARD, EASY, easy_weight=1.5)


def test_bbce_is_weighted_binary_cross_entropy_over_a_batch():
    torch.manual_seed(0)
    pos, hard, easy = torch.randn(4) * 3, torch.randn(4, 15) * 3, torch.randn(4, 15) * 3
    w = 0.2
    per_sample = bbce_loss(pos, hard, easy, easy_weight=w, reduction="none")
    assert per_sample.shape == (4,)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    ref = 0.5 * (
        bce(pos, torch.ones(4), reduction="none")
        + (1 - w) * bce(hard, torch.zeros(4, 15), reduction="none").mean(1)
        + w * bce(easy, torch.zeros(4, 15), reduction="none").mean(1)
    )
    torch.testing.assert_close(per_sample, ref)
    assert bbce_loss(pos, hard, easy, w).item() == pytest.approx(ref.mean().item(), rel=1e-6)
    assert bbce_loss(pos, hard, easy, w, "sum").item() == pytest.approx(ref.sum().item(), rel=1e-6)


def test_bbce_is_stable_at_large_logits():
    loss = bbce_loss(torch.tensor([200.0]), torch.tensor([[-200.0]]))
    assert loss.item() == pytest.approx(0.0, abs=1e-12)
    z = torch.tensor([-200.0], requires_grad=True)
    bbce_loss(z, torch.tensor([[0.0]])).backward()
    assert z.grad.item() == pytest.approx(-0.5)  # ½·(σ(z) − 1)


# --- InfoNCE --------------------------------------------------------------------------------------


def test_info_nce_in_batch_by_hand():
    s = 1 / math.sqrt(2)
    visual = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    audio = torch.tensor([[2.0, 0.0], [3.0, 3.0]])  # normalised: [1, 0], [s, s]
    # τ = 1: cosines [[1, s], [0, s]]; row i's positive is column i.
    #   L_0 = −log(e¹/(e¹ + eˢ)) = log(1 + e^(s − 1));  L_1 = log(1 + e^(0 − s))
    l0, l1 = math.log(1 + math.exp(s - 1)), math.log(1 + math.exp(-s))
    assert info_nce_loss(visual, audio, 1.0).item() == pytest.approx((l0 + l1) / 2)
    per = info_nce_loss(visual, audio, 1.0, reduction="none")
    torch.testing.assert_close(per, torch.tensor([l0, l1]))
    # Audio → visual too: columns [1, 0] (target 0) and [s, s] (target 1):
    #   log(1 + e^(0 − 1)) and log 2; averaged with the rows.
    c0, c1 = math.log(1 + math.exp(-1)), math.log(2)
    sym = info_nce_loss(visual, audio, 1.0, symmetric=True, reduction="none")
    torch.testing.assert_close(sym, torch.tensor([(l0 + c0) / 2, (l1 + c1) / 2]))
    # τ = 0.5 doubles the cosines: L_0 = log(1 + e^(2s − 2)).
    per = info_nce_loss(visual, audio, 0.5, reduction="none")
    assert per[0].item() == pytest.approx(math.log(1 + math.exp(2 * s - 2)))


def test_info_nce_own_candidates_by_hand():
    visual = torch.tensor([[1.0, 0.0]])
    audio = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]])  # positive first
    # Cosines (1, 0, −1), τ = 1: L = −log(e / (e + 1 + e⁻¹)) = log(1 + e⁻¹ + e⁻²)
    expected = math.log(1 + math.exp(-1) + math.exp(-2))
    assert info_nce_loss(visual, audio, 1.0).item() == pytest.approx(expected)
    with pytest.raises(ValueError):
        info_nce_loss(visual, audio, 1.0, symmetric=True)


def test_info_nce_learnable_temperature_gets_a_gradient():
    torch.manual_seed(0)
    tau = torch.tensor(0.07, requires_grad=True)
    info_nce_loss(torch.randn(8, 16), torch.randn(8, 16), tau).backward()
    assert tau.grad is not None and torch.isfinite(tau.grad)


def test_misaligned_embeddings_given_replace_the_roll():
    """With `misaligned`, the misaligned term is BCE(f_b(V_γ, M_γ), 0) over the tracks with
    speech, M the caller's shifted audio: here f_b = (0, v·a), so CE(·, 0) = softplus(v·a)."""

    def backend(v, a):
        s = (v * a).sum(-1)
        return torch.stack([torch.zeros_like(s), s], -1)

    visual = torch.tensor([[[1.0], [2.0]], [[1.0], [1.0]], [[3.0], [0.0]]])  # (3, 2, 1)
    audio = torch.ones(3, 2, 1)
    shifted = torch.tensor([[[0.5], [0.0]], [[-1.0], [2.0]], [[9.0], [9.0]]])
    labels = torch.tensor([[1, 0], [1, 1], [0, 0]])  # track 2 has no speech: not in Γ
    out = cross_modal_contrastive_loss(
        backend, visual, audio, labels, beta=0.0, misalign_beta=1.0, misaligned=shifted
    )
    # v·m over Γ = {0, 1}: (0.5, 0.0, −1.0, 2.0)
    expected = sum(math.log1p(math.exp(x)) for x in (0.5, 0.0, -1.0, 2.0)) / 4  # = 0.8719
    assert out.misalign.item() == pytest.approx(expected, abs=1e-6)
    assert out.shifts is None
    with pytest.raises(ValueError, match="must match audio's shape"):
        cross_modal_contrastive_loss(
            backend, visual, audio, labels, misalign_beta=1.0, misaligned=shifted[:, :1]
        )


def test_dubbed_pairs_by_hand():
    """With `dubbed`, the dub term is BCE(f_b(V_γ, D_γ), 0) over the tracks with speech, added
    with dub_beta after the misaligned term, whose pairs it leaves as they were."""
    visual = torch.tensor([[[1.0], [2.0]], [[1.0], [1.0]], [[3.0], [0.0]]])  # (3, 2, 1)
    audio = torch.ones(3, 2, 1)
    shifted = torch.tensor([[[0.5], [0.0]], [[-1.0], [2.0]], [[9.0], [9.0]]])
    dubbed = torch.tensor([[[1.0], [-0.5]], [[0.0], [3.0]], [[7.0], [7.0]]])
    labels = torch.tensor([[1, 0], [1, 1], [0, 0]])  # track 2 has no speech: not in Γ
    out = cross_modal_contrastive_loss(
        _dot_backend,
        visual,
        audio,
        labels,
        beta=0.0,
        misalign_beta=1.0,
        misaligned=shifted,
        dub_beta=0.5,
        dubbed=dubbed,
    )
    misalign = sum(math.log1p(math.exp(x)) for x in (0.5, 0.0, -1.0, 2.0)) / 4
    dub = sum(math.log1p(math.exp(x)) for x in (1.0, -1.0, 0.0, 3.0)) / 4  # v·d over Γ
    assert out.misalign.item() == pytest.approx(misalign, abs=1e-6)
    assert out.dub.item() == pytest.approx(dub, abs=1e-6)
    assert out.total.item() == pytest.approx(out.asd.item() + misalign + 0.5 * dub, abs=1e-6)
    off = cross_modal_contrastive_loss(_dot_backend, visual, audio, labels, dubbed=dubbed)
    assert off.dub is None  # dub_beta 0: no dubbed pairs
    with pytest.raises(ValueError, match="must match audio's shape"):
        cross_modal_contrastive_loss(
            _dot_backend, visual, audio, labels, dub_beta=1.0, dubbed=dubbed[:, :1]
        )


def _dot_backend(visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    """Logits (0, v·a) per frame: the speaking margin is the dot product."""
    margin = (visual * audio).sum(-1)
    return torch.stack([torch.zeros_like(margin), margin], -1)


def test_offset_ranking_loss_by_hand():
    # One window of 5 frames, 1-d embeddings, offsets −1, 0, 1 over frames 1..3.
    visual = torch.tensor([1.0, 2, 3, 4, 5]).view(1, 5, 1)
    audio = torch.tensor([0.0, 1, 0, 0, 0]).view(1, 5, 1)
    labels = torch.ones(1, 5)
    # k = −1 reads audio frames 0..2 → margins (2·0, 3·1, 4·0), mean 1; k = 0 reads 1..3 →
    # (2·1, 0, 0), mean 2/3; k = 1 reads 2..4 → 0. Target: k = 0.
    want = math.log(math.exp(1) + math.exp(2 / 3) + 1) - 2 / 3
    got = offset_ranking_loss(_dot_backend, visual, audio, labels, max_shift=1, min_speaking=1)
    assert got.item() == pytest.approx(want, rel=1e-6)
    # Frame 2 silent: each offset's mean is over frames 1 and 3 only: 0, 1, 0.
    labels[0, 2] = 0
    want = math.log(2 + math.e) - 1
    got = offset_ranking_loss(_dot_backend, visual, audio, labels, max_shift=1, min_speaking=1)
    assert got.item() == pytest.approx(want, rel=1e-6)
    # Too few speaking frames inside, or a window no longer than 2m: nothing to rank.
    assert offset_ranking_loss(_dot_backend, visual, audio, labels, 1, min_speaking=3) is None
    assert offset_ranking_loss(_dot_backend, visual, audio, labels, max_shift=2) is None


def test_offset_ranking_loss_batches_windows_like_one_at_a_time():
    torch.manual_seed(0)
    visual, audio = torch.randn(3, 20, 4), torch.randn(3, 20, 4)
    labels = torch.ones(3, 20)
    labels[1, :17] = 0  # 3 speaking frames: left out at min_speaking 5
    both = offset_ranking_loss(_dot_backend, visual, audio, labels, max_shift=3)
    each = [
        offset_ranking_loss(_dot_backend, visual[i : i + 1], audio[i : i + 1], labels[i : i + 1], 3)
        for i in (0, 2)
    ]
    assert both.item() == pytest.approx(sum(e.item() for e in each) / 2, rel=1e-6)


def test_bbce_hard_mask_averages_over_the_negatives_that_exist():
    positive = torch.tensor([1.0, -0.5])
    hard = torch.tensor([[0.5, 2.0, -1.0], [0.3, 9.0, 9.0]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    easy = torch.tensor([[0.0], [-2.0]])
    loss = bbce_loss(positive, hard, easy, hard_mask=mask, reduction="none")

    def log_sig(x: float) -> float:
        return -math.log1p(math.exp(-x))

    # Sample 0: three hard negatives and one easy, w = 1/4; sample 1: one hard, w = 1/2.
    first = (
        log_sig(1.0) + 0.75 * sum(log_sig(-z) for z in (0.5, 2.0, -1.0)) / 3 + 0.25 * log_sig(0.0)
    )
    second = log_sig(-0.5) + 0.5 * log_sig(-0.3) + 0.5 * log_sig(2.0)
    assert loss.tolist() == pytest.approx([-0.5 * first, -0.5 * second], rel=1e-6)
    # Without a mask it is the paper's loss over all of them.
    assert bbce_loss(positive, hard, easy).item() == pytest.approx(
        bbce_loss(positive, hard, easy, hard_mask=torch.ones_like(mask)).item()
    )
    with pytest.raises(ValueError, match="at least one negative"):
        bbce_loss(positive, hard, hard_mask=torch.zeros_like(mask))


def test_offset_cross_entropy_is_softmax_over_the_valid_offsets():
    logits = torch.tensor([[1.0, 3.0, 0.0], [2.0, 0.5, 9.0]])
    valid = torch.tensor([[True, True, True], [True, True, False]])
    loss = offset_cross_entropy(logits, valid, reduction="none")
    first = math.log(math.exp(1) + math.exp(3) + math.exp(0)) - 3.0
    second = math.log(math.exp(2) + math.exp(0.5)) - 0.5
    assert loss.tolist() == pytest.approx([first, second], rel=1e-6)
    assert offset_cross_entropy(logits[:1]).item() == pytest.approx(first, rel=1e-6)
    with pytest.raises(ValueError, match="offset 0"):
        offset_cross_entropy(logits, torch.tensor([[True, False, True], [True, True, True]]))
    with pytest.raises(ValueError, match="2K"):
        offset_cross_entropy(torch.zeros(2, 4))
