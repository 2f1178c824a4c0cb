"""Our composed models: two Light-ASD models on one visual stem ("is this face speaking" ×
"is the voice in sync"), the same gated by light-syncnet (`LipGatedLightASD`), with a banded
attention backend as a third half (`TripleGatedLightASD`) or as the second
(`TalkLipGatedLightASD`), the three halves with IC-SyncNet's lip gate (`MelGatedLightASD`, the
default ASD model), and the default sync backend (`SyncPair`).

`SyncGatedLightASD` pairs Light-ASD's public AVA checkpoint (`asd`: good at who is speaking,
blind to whether the voice is this face's) with our synchronization-aware fine-tune of it
(`sync`, `sync-light-asd`: requires the voice to be in sync with the lips, less sure of plain
speech). Its speaking probability is the geometric mean of theirs, p = √(p_asd · p_sync): a
face counts as speaking when both agree. On the validation identities this kept most of both
(README, Results); no new training, the two checkpoints are composed (`compose`). The gated
model's output is calibrated by one logit bias (`decision_shift`), a monotone map that leaves
every ranking as it was.

Both were trained from the same AVA checkpoint with the visual stem (the visual encoder's
first two blocks) frozen, so the stem is identical in both: it runs once, from `asd`, and each
model's visual block3 reads it. The key tree is the two Light-ASD trees under `asd.` and
`sync.`; `compose` checks that the stems are equal.

Its embeddings are the halves' side by side (128 wide each), so it also serves as a sync
backend (`offsets.ASDOffsets`) and exports to ONNX like any ASD model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..audio import MFCC_WIDTH
from ..errors import WeightsError
from .icsyncnet import (
    ICSyncNet,
    image_windows,
    mel_windows_at_100hz,
    mouth_images,
    standardised,
)
from .layers import ASDModel
from .light_asd import LightASD
from .light_syncnet import LightSyncNet, heard_frames, offset_logits
from .light_talknet import ATTENTION_BAND, LightTalkNet

WIDTH = 128  # one Light-ASD's embedding width
_VISUAL_ENCODER = "model.visualEncoder."  # its key prefix in Light-ASD's tree


class SyncGatedLightASD(ASDModel):
    """Light-ASD (AVA) × sync-light-asd: p = √(p_asd · p_sync) per frame (then logit p +=
    `decision_shift`, zero here)."""

    # A logit bias on the output (`LipGatedLightASD`'s calibration). None here: each half is
    # calibrated (light-asd.ava by its authors, sync-light-asd by `syncasd train`), and the
    # bias validation asked for (+1.07) made test worse (model card).
    decision_shift = 0.0

    def __init__(self, asd: LightASD | None = None, sync: LightASD | None = None) -> None:
        """`asd`, `sync`: the halves (new Light-ASD models unless given)."""
        super().__init__()
        self.asd = asd if asd is not None else LightASD()
        self.sync = sync if sync is not None else LightASD()

    def frame_logits(self, video: torch.Tensor, mfcc: torch.Tensor) -> torch.Tensor:
        """video (B, T, 112, 112) gray 0–255, mfcc (B, 4T, 13) → (B, T, 2) logits whose
        softmax is (1 − p, p), p calibrated."""
        return _shifted(self.speaking_log_prob(video, mfcc), self.decision_shift)

    def speaking_log_prob(self, video: torch.Tensor, mfcc: torch.Tensor) -> torch.Tensor:
        """(B, T) log √(p_asd · p_sync), before calibration."""
        visual, audio = self.visual_embeddings(video), self.audio_embeddings(mfcc)
        return self.backend_logits(visual, audio)[..., 1]

    def halves(self) -> list[LightASD]:
        """The models whose speaking probabilities are multiplied, in key-tree order."""
        return [self.asd, self.sync]

    def visual_embeddings(self, video: torch.Tensor) -> torch.Tensor:
        """(B, T, 112, 112) → (B, T, 128 · halves): each half's visual embeddings side by side,
        the stem run once (from `asd`) and a visual encoder that halves share run once."""
        maps = self.asd.visual_maps(video)
        done: dict[int, torch.Tensor] = {}
        for half in self.halves():
            encoder = id(half.model.visualEncoder)
            if encoder not in done:
                done[encoder] = half.visual_from_maps(maps)
        return torch.cat([done[id(h.model.visualEncoder)] for h in self.halves()], -1)

    def audio_embeddings(self, mfcc: torch.Tensor) -> torch.Tensor:
        """(B, 4T, 13) → (B, T, 128 · halves) (of a model that `reads_mel`, its first 13
        columns: the MFCCs)."""
        mfcc = mfcc[..., :MFCC_WIDTH]
        return torch.cat([half.audio_embeddings(mfcc) for half in self.halves()], -1)

    def backend_logits(self, visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """(B, T, 128 · n) embeddings → (B, T, 2) logits (log(1 − p), log p), p the geometric
        mean of the n halves' speaking probabilities (√(p_asd · p_sync) here)."""
        log_p = [
            half.backend_logits(
                visual[..., i * WIDTH : (i + 1) * WIDTH], audio[..., i * WIDTH : (i + 1) * WIDTH]
            ).log_softmax(-1)[..., 1]
            for i, half in enumerate(self.halves())
        ]
        return _two_class(torch.stack(log_p).mean(0))


def _two_class(log_p: torch.Tensor) -> torch.Tensor:
    """(..., T) log p → (..., T, 2) logits (log(1 − p), log p), whose softmax is (1 − p, p)."""
    # log(1 − p) without cancelling: p < 1 always, since every factor of p is < 1.
    log_not = torch.log1p(-torch.exp(log_p).clamp(max=1.0 - 1e-7))
    return torch.stack([log_not, log_p], -1)


def _shifted(log_p: torch.Tensor, shift: float) -> torch.Tensor:
    """(..., T) log p → (..., T, 2) logits whose softmax is (1 − p', p'), logit p' = logit p +
    shift: a monotone map, so every ranking (mAP, who speaks first) stays as it was."""
    return _two_class(log_p) + log_p.new_tensor([0.0, shift])


# The lip gate (`LipGatedLightASD`); chosen on the validation identities (model card).
GATE_MAX_OFFSET = 15  # offsets searched, ±frames: the gate compares 0 ± GATE_NEAR with these
GATE_NEAR = 2  # offsets counted as in sync (real videos are often one or two frames off)
GATE_SLOPE = 3.0  # gate = σ(GATE_SLOPE · (evidence − GATE_CENTRE)), evidence in logit units
GATE_CENTRE = 1.0
# Each frame's curve weighs the frames around it by a Gaussian of σ = 0.75 s: a gate per
# frame that follows the turns of a conversation (the whole window at once, σ = ∞, did not).
GATE_SIGMA = 18.75
_WEIGHT_FLOOR = 1e-3  # keeps a stretch without any speaking probability weighted evenly


class LipGatedLightASD(SyncGatedLightASD):
    """The ensemble × a lip-sync gate: p(t) = p_ensemble(t) · g(t).

    g(t) says whether this face's lips are in sync with the voice around frame t, where the
    ensemble thinks the face speaks: light-syncnet's sync logits z_k(s) = cos(v_s, a_{s+k}) / τ
    at every offset k in ±GATE_MAX_OFFSET, averaged over the frames s of the scoring window
    weighted by a Gaussian of t − s (σ = GATE_SIGMA frames) times the ensemble's speaking
    probability at s, give a curve c_t(k); the evidence e(t) = max over |k| ≤ GATE_NEAR of
    c_t(k) − the median of c_t. A face whose voice is in sync has a peak near 0 (e ≈ 1–2.5 on
    the validation tracks); another voice gives a flat curve and a shifted one a peak elsewhere
    (e ≈ 0–0.7). In a conversation the gate opens on a face's own turns and closes on the
    others', so the face heard now ranks first.

    The product is calibrated: logit p += `decision_shift`.

    Key tree: the ensemble's (`asd.`, `sync.`) and light-syncnet's under `lips.`.
    """

    # The gate multiplies p by 0.6–0.95 on in-sync speech, so the product is shy: at 0.5 it
    # called 53 % of the validation speech speaking. This bias moves the best threshold on the
    # validation frames (Youden's J, the rule `syncasd train` calibrates by) to `detect`'s 0.5:
    # `python bench/decision_threshold.py` (1.065 with stage 3's sync-light-asd, 1.198 with
    # the photometric stage 4, 0.783 with the dubbed stage 5).
    decision_shift = 0.783

    # The gate's shape, σ(gate_slope · (e − gate_centre)).
    gate_slope = GATE_SLOPE
    gate_centre = GATE_CENTRE

    def __init__(self, asd: LightASD | None = None, sync: LightASD | None = None) -> None:
        super().__init__(asd, sync)
        self.lips = LightSyncNet()

    def speaking_log_prob(self, video: torch.Tensor, mfcc: torch.Tensor) -> torch.Tensor:
        """(B, T) log(p_ensemble · gate), before calibration."""
        log_p = super().speaking_log_prob(video, mfcc)
        evidence = self.sync_evidence(video, mfcc, log_p.exp())
        return log_p + F.logsigmoid(self.gate_slope * (evidence - self.gate_centre))

    def sync_evidence(
        self, video: torch.Tensor, mfcc: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        """(B, T) evidence e(t) of the class docstring; `weights` (B, T) ≥ 0 weigh the frames."""
        return gate_evidence(self.sync_curves(video, mfcc, weights))

    def sync_curves(
        self, video: torch.Tensor, mfcc: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        """(B, 2K + 1, T) the curves c_t(k) of the class docstring, k = −K…K by row."""
        k, t = GATE_MAX_OFFSET, video.shape[1]
        logits = self.sync_logits(video, mfcc)
        # Pairs whose audio lies outside the window are left out of every average.
        heard = heard_frames(t, k, video.device)
        valid = ((heard >= k) & (heard < k + t)).to(logits.dtype)
        return gate_curves(logits, weights, valid)

    def sync_logits(self, video: torch.Tensor, mfcc: torch.Tensor) -> torch.Tensor:
        """(B, 2K + 1, T) light-syncnet's sync logits z_k(t), k = −K…K by row."""
        k = GATE_MAX_OFFSET
        visual = self.lips.visual_embeddings(video)  # (B, T, D)
        # The window's audio only: K zero embeddings on each side stand for what it lacks.
        audio = F.pad(self.lips.audio_embeddings(mfcc[..., :MFCC_WIDTH]), (0, 0, k, k))
        return self.lips.offset_logits(visual, audio)


class TalkLipGatedLightASD(LipGatedLightASD):
    """`LipGatedLightASD` with its sync half replaced by `light-talknet-band`: p = √(p_asd ·
    p_talk) × the lip gate, calibrated. The attention backend (TalkNet's, each attention
    within ±1 s of its query, trained with Sync-TalkNet's contrastive loss on the frozen AVA
    visual encoder) follows the turns of a conversation better than the BiGRU halves
    (validation: the face heard now ranked first on 81.2 % of a conversation's voiced frames
    against 70.7 %), at a small cost elsewhere (docs/results.md, "As a term of the default").

    `talk`: the attention model to use (`light-talknet-band`'s architecture unless given; a
    screen passes others). Its visual encoder IS `asd`'s module (it was trained frozen on it),
    so the visual embeddings are computed once for both halves.

    Key tree: `asd.`, `sync.` (the attention model; `sync.model.visualEncoder.` is `asd`'s,
    so the bundled file stores it once) and `lips.`."""

    # Youden's J on the validation frames (bench/screen_talk_term.py): it printed −0.064 on
    # top of LipGatedLightASD's 0.783, which that screen then held (fixed since), so 0.719 in all.
    decision_shift = 0.719

    def __init__(self, talk: LightTalkNet | None = None) -> None:
        asd = LightASD()
        super().__init__(asd, _on_visual_encoder_of(asd, talk))


class TripleGatedLightASD(LipGatedLightASD):
    """The default until stop 42 (now `MelGatedLightASD`, these halves with IC-SyncNet's gate):
    `LipGatedLightASD`'s two halves and `TalkLipGatedLightASD`'s attention
    half, all three, × the lip gate: p = ∛(p_asd · p_sync · p_talk) · g, calibrated. The
    attention half follows the turns of a conversation and adds a third view of whether the
    voice is this face's: on the validation identities it gained 1.2 points of mAP on
    unsynchronized voices (mean of mismatched and misaligned) and 4.3 of conversations over
    `LipGatedLightASD` (docs/results.md, "As a term of the default").

    `talk`: the attention half, as in `TalkLipGatedLightASD`.

    Key tree: `asd.`, `sync.`, `talk.` (`talk.model.visualEncoder.` is `asd`'s module, held
    once and run once) and `lips.`."""

    # Youden's J on the validation frames, from the uncalibrated product (runs of stop 29;
    # `bench/decision_threshold.py` derives such a shift for any model).
    decision_shift = 0.725

    def __init__(self, talk: LightTalkNet | None = None) -> None:
        super().__init__()
        self.talk = _on_visual_encoder_of(self.asd, talk)

    def halves(self) -> list[LightASD]:
        return [self.asd, self.sync, self.talk]


class MelGatedLightASD(TripleGatedLightASD):
    """`TripleGatedLightASD` with its lip gate read from IC-SyncNet (`ic-syncnet`, the CPU
    size) instead of light-syncnet: p = ∛(p_asd · p_sync · p_talk) · g, calibrated.

    The gate is computed as `LipGatedLightASD`'s, from IC-SyncNet's sync logits cos / τ of
    every frame's five mouth images (t − 2 … t + 2, the window's ends repeated) against the
    0.4 s log-mel window at every offset k. IC-SyncNet hears a log-mel spectrogram, not the
    MFCCs, so this model `reads_mel`: its audio input is `asd_features(..., with_mel=True)`,
    the MFCCs and the 100-Hz log-mel side by side, four rows per frame; the mouths are cut
    from the same gray crops (`icsyncnet.mouth_images`, as `icsyncnet.mouth_crops`).

    Each mouth image is standardised to IC-SyncNet's training clips' gray mean and spread
    first (`mouth_contrast`), so dim or low-contrast video does not close the gate.

    Why: on the validation identities the log-mel gate told the voice of this face from
    another or a shifted one better than light-syncnet's (`bench/gate_backends.py`), at 8 %
    of `detect`'s speed; the default since stop 42, chosen by a rule written first (model card
    of sync-light-asd, "The default since stop 42").

    Key tree: `TripleGatedLightASD`'s with IC-SyncNet's under `lips.`."""

    reads_mel = True
    # A validation screen of slopes × centres (stop 40, `bench/gate_backends.py`): the centre
    # is 0.975 × its clean median evidence, the slope the most AP against other-voice and
    # shifted-voice twins with the clean operating point kept.
    gate_slope = 3.69
    gate_centre = 0.975
    # Youden's J on the validation frames (as `bench/decision_threshold.py` derives it), with
    # the mouths standardised (0.691 before: +0.061).
    decision_shift = 0.752
    # The gray mean and standard deviation each mouth image is standardised to before the gate
    # reads it (`icsyncnet.standardised`): the medians over IC-SyncNet's training identities
    # (two clips each, 8,697 frames).
    mouth_contrast = (85.4, 32.5)

    def __init__(self, talk: LightTalkNet | None = None) -> None:
        super().__init__(talk)
        self.lips = ICSyncNet.from_config("cpu")

    def sync_logits(self, video: torch.Tensor, mfcc: torch.Tensor) -> torch.Tensor:
        """(B, 2K + 1, T) IC-SyncNet's sync logits z_k(t), k = −K…K by row; `mfcc` the
        model's (B, 4T, 13 + 80) audio input."""
        k, lips = GATE_MAX_OFFSET, self.lips
        b, t = video.shape[:2]
        mouths = standardised(mouth_images(video, lips.dims), *self.mouth_contrast)
        mouths = mouths[:, image_windows(t, video.device)]
        # `reshape`, not `unflatten`: the ONNX export keeps the number of frames dynamic.
        visual = lips.visual_embeddings(mouths.flatten(0, 1)).reshape(b, t, -1)
        mel = mfcc[..., MFCC_WIDTH:].transpose(1, 2)  # (B, 80, 4T)
        centres = torch.arange(-k, t + k, device=video.device)  # the images each window hears
        windows = mel_windows_at_100hz(mel, centres, k, lips.dims.mel_columns)
        audio = lips.audio_embeddings(windows.flatten(0, 1)).reshape(b, t + 2 * k, -1)
        return offset_logits(visual, audio, lips.temperature)


def _on_visual_encoder_of(asd: LightASD, talk: LightTalkNet | None) -> LightTalkNet:
    """`talk` (a `light-talknet-band` unless given) with `asd`'s visual encoder module in place
    of its own: it was trained frozen on that encoder, so one module serves both and
    `SyncGatedLightASD.visual_embeddings` runs it once."""
    talk = talk if talk is not None else LightTalkNet(band=ATTENTION_BAND)
    talk.model.visualEncoder = asd.model.visualEncoder
    return talk


def check_shared_visual_encoder(
    talk: Mapping[str, torch.Tensor], asd: Mapping[str, torch.Tensor], source: object
) -> None:
    """WeightsError unless the attention model's state dict `talk` holds `asd`'s visual
    encoder tensor for tensor (both in Light-ASD's key tree): the composed models run `asd`'s
    for both (`_on_visual_encoder_of`)."""
    for key, value in talk.items():
        if key.startswith(_VISUAL_ENCODER) and not torch.equal(value, asd[key]):
            raise WeightsError(
                f"{source}: its visual encoder is not light-asd.ava's ({key}): train it with "
                "`freeze: [visual]` from the AVA checkpoint"
            )


def gate_curves(
    logits: torch.Tensor, weights: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, 2K + 1, T) sync logits z_k(s) of any lip-sync model → the gate's curves c_t(k)
    (`LipGatedLightASD`): each frame's average of z_k over the frames s around it, weighted by
    a Gaussian of t − s (σ = GATE_SIGMA) times `weights` (B, T) at s (plus a floor). `valid`
    (broadcast to (B, 2K + 1, T)) leaves out the pairs whose audio lies outside what was heard."""
    w = (weights + _WEIGHT_FLOOR)[:, None, :]
    w = w * valid if valid is not None else w.expand_as(logits)
    total = _gaussian_sums(w, GATE_SIGMA)
    curve = _gaussian_sums(w * logits, GATE_SIGMA) / total.clamp_min(1e-12)
    # An offset that no frame near t reaches takes the mean of the others.
    seen = (total > 1e-12).to(curve.dtype)
    filler = (curve * seen).sum(1, keepdim=True) / seen.sum(1, keepdim=True).clamp_min(1)
    return torch.where(total > 1e-12, curve, filler)


def gate_evidence(curve: torch.Tensor) -> torch.Tensor:
    """(B, 2K + 1, T) curves → (B, T) evidence: the maximum within ±GATE_NEAR of offset 0
    minus the median over all offsets."""
    k = (curve.shape[1] - 1) // 2
    near = curve[:, k - GATE_NEAR : k + GATE_NEAR + 1]
    median = curve.sort(1).values[:, k]  # 2K + 1 values: the middle one
    return near.max(1).values - median


def _gaussian_sums(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, C, T) → the same, each frame the Gaussian-weighted sum (σ frames) over its
    neighbours along T (zero past the ends)."""
    half = int(math.ceil(3 * sigma))
    taps = torch.arange(-half, half + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)[None, None]
    b, c, t = x.shape
    return F.conv1d(x.reshape(b * c, 1, t), kernel, padding=half).reshape(b, c, t)


def compose(
    asd: Mapping[str, torch.Tensor], sync: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """One `SyncGatedLightASD` state dict from two Light-ASD state dicts (their key trees).

    WeightsError if their visual stems differ: the pair runs `asd`'s stem for both.
    """
    for key in LightASD().state_dict():
        if key.startswith(LightASD.stem_modules) and not torch.equal(asd[key], sync[key]):
            raise WeightsError(
                f"the two checkpoints' visual stems differ ({key}): the sync model must be "
                "fine-tuned from the ASD checkpoint with `freeze: [visual-stem]`"
            )
    state = {f"asd.{k}": v for k, v in asd.items()}
    state |= {f"sync.{k}": v for k, v in sync.items()}
    return state


def write_gated_checkpoint(
    asd_weights: str | Path,
    sync_weights: str | Path,
    lips_weights: str | Path,
    pair_weights: str | Path,
    out: str | Path,
    talk_weights: str | Path,
) -> Path:
    """The bundled `sync_light_asd_gated.pt`: Light-ASD's AVA checkpoint (`asd.`),
    sync-light-asd (`sync.`), light-syncnet (`lips.`) and the sync-light-asd that `SyncPair`
    sums with light-syncnet (`pair.`: stage 3, without the photometric stage, which cost the
    pair 1.5–2.7 points of sync accuracy) composed into `out` (atomically). The registry serves
    them, the ensemble and `SyncPair` as views of this one file. `talk_weights`, a
    `light-talknet-band` trained on the frozen AVA visual encoder, adds `talk.` (without that
    encoder, which is `asd.`'s), the attention half of the default (`TripleGatedLightASD`) and
    of `TalkLipGatedLightASD`. Each registry model's view of the file is loaded, strictly,
    before it is written."""
    from ..atomic import atomic_path
    from .zoo import get_spec, load_state_dict, with_companions  # zoo imports this module

    asd = load_state_dict(asd_weights)
    state = compose(asd, load_state_dict(sync_weights))
    state |= {f"lips.{k}": v for k, v in load_state_dict(lips_weights).items()}
    state |= {f"pair.{k}": v for k, v in load_state_dict(pair_weights).items()}
    talk = load_state_dict(talk_weights)
    check_shared_visual_encoder(talk, asd, talk_weights)
    state |= {f"talk.{k}": v for k, v in talk.items() if not k.startswith(_VISUAL_ENCODER)}
    composed = (
        "sync-light-asd-gated",
        "sync-pair",
        "sync-light-talknet-gated",
        "sync-light-asd-talknet-gated",
        "sync-light-asd-talknet-icgated",
    )
    for name in composed:  # each model's view of the file, as the registry reads it, checked
        spec = get_spec(name)
        view = spec.checkpoints["shared"]
        spec.builder().load_state_dict(with_companions(view, view.select(state)), strict=True)
    out = Path(out)
    with atomic_path(out) as tmp:
        torch.save(state, tmp)
    return out


# --- the default sync backend: two offset models summed --------------------------------------


class SyncPair(nn.Module):
    """`sync-light-asd` and `light-syncnet` as one sync model (`offsets.SumOffsets`): the
    probability that lips at t and audio at t + k are in sync is σ(logit p_asd + logit p_lips),
    p_asd the sync-aware ASD model's "speaking" under the shifted audio (a plateau about ±2
    frames wide, robust) and p_lips LightSyncNet's σ(cos / τ) (a peak one frame wide, noisier
    on short clips). Chosen on the validation identities (model card of light-syncnet).

    The key tree is the two state dicts under `asd.` and `lips.`; its bundled weights are a
    view of the bundled file (`pair.` as `asd.`, `lips.`)."""

    def __init__(self) -> None:
        super().__init__()
        self.asd = LightASD()
        self.lips = LightSyncNet()
