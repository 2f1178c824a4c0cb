"""The who-speaks test: several faces with moving lips, one voice. Whose is it?

Each scene puts two or three faces of different test identities side by side
(`syncasd.data.compose`) under the audio of ONE of them, the heard face. Every face moves its
lips, so a model that only pairs "a voice is on" with "lips move" calls all of them speaking;
a synchronization-aware one singles out the face whose lips match the voice. The heard face is
labelled from its own clip (word timings, else Silero VAD); the others are never speaking.

With `turn` seconds the scenes are conversations: the voice passes from face to face every
`turn` seconds (from the drawn heard face, left to right and round), each face heard in its own
voice and in sync, so a face is labelled from its clip during its turns and not speaking
outside them. That asks a model to follow the speaker within its scoring window.

With `together`, every face is heard at once, each in its own voice (the clips' audio summed,
each voice as loud as the others, as when people talk over each other), each labelled from its
own clip. No face is "the heard one" there; what counts is whether each face's speech is still
called speaking with others talking over it (at `detect`'s threshold, 0.5), and how often its
silences are.

The real pipeline (`syncasd.pipeline.Detector`: face detection, tracking, crops, scores) runs
on each composed scene and each face track is given to the tile its median box centre lies in.
Two numbers (three with `together`), per number of faces and over all scenes:

- heard first: the share of voiced frames (the heard face labelled speaking) on which the heard
  face has the strictly highest speaking probability among the faces tracked in that frame;
  a voiced frame where the heard face has no track is a miss;
- mAP: AVA-style pooled mAP over every tracked face-frame of every scene (`pooled_map`);
- with `together`, in place of heard first: speech called, the share of the faces' speaking
  frames with probability ≥ 0.5, and silence called, the same over their silent frames (an
  untracked frame is not called speaking; `called_shares`).

Scenes (the seeded choice of clips and of the heard one) are built once and the composed MP4s
are cached under `$SYNCASD_CACHE/whospeaks/`, so every model is scored on the same videos.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import media
from ..atomic import atomic_write
from ..data.compose import Rect, _Clip, compose_side_by_side
from ..data.labelled import clip_labels
from ..data.samples import rms, speech_rms
from ..data.splits import Split, identity_of
from ..errors import InputError
from ..timebase import MODEL_FPS
from .report import Report
from .tracks import pooled_map

log = logging.getLogger("syncasd")

FACES = (2, 3)
SCENE_SIZE = (1280, 720)
PRESET = "veryfast"
CACHE_VERSION = 1  # bump when scenes are composed differently


# --- pure parts: labels and the ranking metric ----------------------------------------------


def looped_labels(clip_labels: np.ndarray, loop_s: float, n_frames: int) -> np.ndarray:
    """A clip's speaking labels on the scene's frames.

    The scene starts at the clip's start and `compose_side_by_side` loops a clip shorter than
    the scene every `loop_s` seconds (its frame count / fps), so scene frame k takes the clip
    label at the centre time (k + 0.5) / 25 modulo `loop_s`; past the end of the labels (audio
    shorter than the video) a frame is not speaking.
    """
    clip_labels = np.asarray(clip_labels, bool)
    t = np.mod((np.arange(n_frames) + 0.5) / MODEL_FPS, loop_s)
    index = np.floor(t * MODEL_FPS).astype(int)
    inside = index < len(clip_labels)
    out = np.zeros(n_frames, bool)
    out[inside] = clip_labels[index[inside]]
    return out


def heard_tiles(turns: Sequence[tuple[float, int]], n_frames: int) -> np.ndarray:
    """(n_frames,) index of the tile heard at each frame's centre time, from the turns'
    (start seconds, tile) pairs (as `compose_side_by_side` plays them)."""
    starts = np.array([t for t, _ in turns], np.float64)
    tiles = np.array([i for _, i in turns], np.int64)
    centres = (np.arange(n_frames) + 0.5) / MODEL_FPS
    return tiles[np.searchsorted(starts, centres, side="right") - 1]


def frames_from_change(turns: Sequence[tuple[float, int]], n_frames: int) -> np.ndarray:
    """(n_frames,) distance in frames to the nearest change of the heard tile (the first frame
    of a new turn is 0 away, the last of the old one 1); a large number without a change."""
    changes = np.flatnonzero(np.diff(heard_tiles(turns, n_frames))) + 1
    if not len(changes):
        return np.full(n_frames, np.iinfo(np.int64).max)
    return np.abs(np.arange(n_frames)[:, None] - changes[None, :]).min(axis=1)


def heard_first_mask(
    heard_probs: np.ndarray, other_probs: Sequence[np.ndarray], voiced: np.ndarray
) -> np.ndarray:
    """(T,) bool: voiced frames on which the heard face is strictly first (`heard_first_share`)."""
    heard_probs = np.asarray(heard_probs, np.float64)
    voiced = np.asarray(voiced, bool)
    first = voiced & ~np.isnan(heard_probs)
    for other in other_probs:
        other = np.asarray(other, np.float64)
        # An untracked face (NaN) is no rival; a tie is not a win.
        first &= np.isnan(other) | (heard_probs > other)
    return first


def heard_first_share(
    heard_probs: np.ndarray, other_probs: Sequence[np.ndarray], voiced: np.ndarray
) -> float:
    """Share of voiced frames on which the heard face has the highest speaking probability.

    All arrays are per scene frame; NaN means the face has no track in that frame. A voiced
    frame counts as heard-first only if the heard face is tracked and its probability is
    STRICTLY higher than that of every other tracked face (a tie is not first; a frame where
    only the heard face is tracked is first). A voiced frame without a heard-face track is a
    miss. NaN when no frame is voiced.
    """
    n = int(np.asarray(voiced, bool).sum())
    if n == 0:
        return float("nan")
    return float(heard_first_mask(heard_probs, other_probs, voiced).sum()) / n


def called_shares(
    labels: Sequence[np.ndarray], probs: Sequence[np.ndarray], threshold: float = 0.5
) -> tuple[float, float]:
    """(share of speaking frames, share of silent frames) with probability ≥ `threshold`,
    pooled over the (labels, probs) pairs of per-frame arrays; NaN (no track) is never called
    speaking. Each share is NaN without frames of its kind."""
    y = np.concatenate([np.asarray(x, bool) for x in labels])
    p = np.concatenate([np.asarray(x, np.float64) for x in probs])
    called = np.nan_to_num(p, nan=-np.inf) >= threshold
    speech = float(called[y].mean()) if y.any() else float("nan")
    silence = float(called[~y].mean()) if (~y).any() else float("nan")
    return speech, silence


def tile_of(boxes: np.ndarray, rects: Sequence[Rect]) -> int | None:
    """Index of the tile holding the track's median box centre, or None (background)."""
    boxes = np.asarray(boxes, np.float64)
    cx = float(np.median((boxes[:, 0] + boxes[:, 2]) / 2))
    cy = float(np.median((boxes[:, 1] + boxes[:, 3]) / 2))
    for i, (x1, y1, x2, y2) in enumerate(rects):
        if x1 <= cx < x2 and y1 <= cy < y2:
            return i
    return None


# --- scenes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scene:
    """One composed video: its clips left to right, which one is heard (first, and in `turns`
    when the voice passes between them; no turns: all at once), each tile's labels."""

    clips: tuple[Path, ...]
    # (start seconds, tile); one turn: one voice throughout; none: every face's voice at once
    turns: tuple[tuple[float, int], ...]
    path: Path
    rects: tuple[Rect, ...]
    labels: tuple[np.ndarray, ...]  # per tile, (n_frames,) bool

    @property
    def heard(self) -> int | None:
        """The tile heard first (throughout, in a one-voice scene); None: all are heard."""
        return self.turns[0][1] if self.turns else None

    @property
    def n_faces(self) -> int:
        return len(self.clips)

    @property
    def n_frames(self) -> int:
        return len(self.labels[0])


@dataclass
class SceneScore:
    """One model's probabilities per tile of one scene (NaN where the face has no track)."""

    scene: Scene
    probs: list[np.ndarray]
    tracks_per_tile: list[int]
    unmatched: int  # tracks whose centre lies in no tile (never counted)

    def heard_first(self) -> np.ndarray:
        """(T,) voiced frames on which the face heard then is first (the tiles' labels are
        disjoint: one face is heard at a time)."""
        first = np.zeros(self.scene.n_frames, bool)
        for i, (probs, voiced) in enumerate(zip(self.probs, self.scene.labels, strict=True)):
            others = [p for j, p in enumerate(self.probs) if j != i]
            first |= heard_first_mask(probs, others, voiced)
        return first


@dataclass
class WhoSpeaksResult:
    """Heard-first share (0-1) and pooled mAP (%) per number of faces and over all scenes."""

    model: str
    share: dict[int, float] = field(default_factory=dict)
    maps: dict[int, float] = field(default_factory=dict)
    share_all: float = float("nan")
    map_all: float = float("nan")
    # `together` scenes: (speech called, silence called) shares (0-1) per number of faces.
    called: dict[int, tuple[float, float]] = field(default_factory=dict)
    called_all: tuple[float, float] = (float("nan"), float("nan"))
    scenes: list[SceneScore] = field(default_factory=list)


def _summary(scores: Sequence[SceneScore]) -> tuple[float, float]:
    """(heard-first share pooled over all voiced frames (NaN where all are heard at once),
    pooled mAP) of some scenes."""
    one_voice = [s for s in scores if s.scene.turns]
    voiced = sum(int(y.sum()) for s in one_voice for y in s.scene.labels)
    first = sum(int(s.heard_first().sum()) for s in one_voice)
    labels, probs = [], []
    for s in scores:
        for y, p in zip(s.scene.labels, s.probs, strict=True):
            tracked = ~np.isnan(p)
            labels.append(y[tracked])
            probs.append(p[tracked])
    share = first / voiced if voiced else float("nan")
    return share, pooled_map(labels, probs) if labels else float("nan")


DISTANCE_EDGES = (0, 5, 10, 19, 30)  # frames from a change of voice: the conversation report's bins


def _called(scores: Sequence[SceneScore]) -> tuple[float, float]:
    """`called_shares` over every tile of some scenes."""
    pairs = [(y, p) for s in scores for y, p in zip(s.scene.labels, s.probs, strict=True)]
    return called_shares([y for y, _ in pairs], [p for _, p in pairs])


def heard_first_by_distance(
    scores: Sequence[SceneScore], edges: Sequence[int] = DISTANCE_EDGES
) -> list[tuple[int, int | None, float, int]]:
    """(from, to (exclusive; None: no end), heard-first share, voiced frames) for each bin of
    distance to the nearest change of voice, pooled over the scenes."""
    hits, totals = np.zeros(len(edges)), np.zeros(len(edges), np.int64)
    for s in scores:
        voiced = np.any(np.stack(s.scene.labels), axis=0)
        bins = np.searchsorted(edges, frames_from_change(s.scene.turns, s.scene.n_frames), "right")
        first = s.heard_first()
        for k in range(len(edges)):
            inside = voiced & (bins - 1 == k)
            hits[k] += first[inside].sum()
            totals[k] += inside.sum()
    ends = [*edges[1:], None]
    return [
        (lo, hi, float(hits[k] / totals[k]) if totals[k] else float("nan"), int(totals[k]))
        for k, (lo, hi) in enumerate(zip(edges, ends, strict=True))
    ]


class WhoSpeaksTest:
    """The seeded scenes, composed once; `run` scores one model on all of them.

    `clips` are filtered to the package split's identities of `part` (test; val to choose
    between candidates; negatives left out); each scene takes faces of different identities.
    `duration` is the scene length in seconds (default: its shortest clip); `turn`, if given,
    makes each scene a conversation whose voice passes to the next face every `turn` seconds;
    `together` makes every face heard at once, each in its own voice.
    """

    def __init__(
        self,
        clips: Sequence[str | Path],
        faces: Sequence[int] = FACES,
        scenes: int = 10,
        seed: int = 0,
        duration: float | None = None,
        size: tuple[int, int] = SCENE_SIZE,
        split: Split | None = None,
        part: str = "test",
        turn: float | None = None,
        together: bool = False,
    ) -> None:
        faces = tuple(sorted(set(faces)))
        if not faces or any(not 2 <= n <= 4 for n in faces):
            raise InputError(f"--faces must be 2, 3 or 4 per scene, got {list(faces)}")
        if scenes < 1:
            raise InputError(f"--scenes must be at least 1, got {scenes}")
        if duration is not None and duration <= 0:
            raise InputError(f"--duration must be positive, got {duration}")
        if turn is not None and turn <= 0:
            raise InputError(f"--turn must be positive, got {turn}")
        if together and turn is not None:
            raise InputError(
                "--together and --turn: choose one (all voices at once, or one after another)"
            )
        split = split or Split.load()
        given = sorted({Path(c) for c in clips})
        for clip in given:
            if not clip.is_file():
                raise InputError(f"{clip}: no such file")
        usable = [c for c in given if split.split_of(c) == part and not split.is_negative(c)]
        self.dropped = len(given) - len(usable)
        if self.dropped:
            log.info("who-speaks: %d clip(s) not of a speaking %s identity", self.dropped, part)
        by_identity: dict[str, list[Path]] = {}
        for clip in usable:
            by_identity.setdefault(identity_of(clip), []).append(clip)
        if len(by_identity) < faces[-1]:
            raise InputError(
                f"{faces[-1]}-face scenes need clips of {faces[-1]} different {part} identities; "
                f"the {len(given)} clip(s) given hold {len(by_identity)} "
                f"({', '.join(sorted(by_identity)) or 'none'})"
            )
        self.identities = by_identity
        self.faces, self.n_scenes, self.seed = faces, scenes, seed
        self.duration, self.size, self.turn, self.together = duration, size, turn, together
        self._hashes: dict[Path, str] = {}
        self._clip_infos: dict[Path, tuple[np.ndarray, float]] = {}
        rng = np.random.default_rng(seed)
        names = sorted(by_identity)
        self.scenes: list[Scene] = []
        for n in faces:
            for _ in range(scenes):
                pools = [by_identity[names[i]] for i in rng.choice(len(names), n, replace=False)]
                chosen = [pool[rng.integers(len(pool))] for pool in pools]
                self.scenes.append(self._scene(tuple(chosen), int(rng.integers(n))))

    def _hash(self, clip: Path) -> str:
        from ..models.zoo import sha256_file

        if clip not in self._hashes:
            self._hashes[clip] = sha256_file(clip)
        return self._hashes[clip]

    def _clip_info(self, clip: Path) -> tuple[np.ndarray, float]:
        """A clip's frame labels and the loudness of its speech (of all of it, if none is
        labelled; for `together`), its audio read once."""
        if clip not in self._clip_infos:
            audio = media.read_audio(clip, origin=media.probe(clip).origin)
            labels = clip_labels(clip, audio)
            audio = audio.astype(np.float64)
            self._clip_infos[clip] = labels, speech_rms(audio, labels) or rms(audio)
        return self._clip_infos[clip]

    def _mix_gains(self, clips: Sequence[Path]) -> list[float]:
        """Gains that bring every clip's speech down to the quietest one's level: each voice
        as loud as the others, none clipped."""
        levels = [self._clip_info(c)[1] for c in clips]
        floor = min((x for x in levels if x > 0), default=1.0)
        return [floor / x if x > 0 else 1.0 for x in levels]

    def _scene(self, clips: tuple[Path, ...], heard: int) -> Scene:
        """Compose (or find in the cache) one scene and label its tiles."""
        from ..models.zoo import cache_dir

        # compose's own clip reader, so that the loop length matches what it encodes.
        sources = [_Clip(c) for c in clips]
        duration = self.duration or min(s.duration for s in sources)
        turns = [] if self.together else self._turns(heard, len(clips), duration)
        key = [CACHE_VERSION, [self._hash(c) for c in clips], heard, self.size, duration, PRESET]
        if self.turn is not None:  # one voice throughout: the key (and cache) of before
            key.append(turns)
        if self.together:
            key.append("mix at equal loudness")
        key = json.dumps(key)
        digest = hashlib.sha256(key.encode()).hexdigest()[:20]
        folder = cache_dir() / "whospeaks"
        video, meta = folder / f"{digest}.mp4", folder / f"{digest}.json"
        rects = None
        if video.exists() and meta.exists():
            try:
                rects = [tuple(map(float, r)) for r in json.loads(meta.read_text())["rects"]]
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("%s: unreadable scene cache, composing again", meta)
        if rects is None:
            folder.mkdir(parents=True, exist_ok=True)
            audio = "mix" if self.together else heard if self.turn is None else turns
            gains = self._mix_gains(clips) if self.together else None
            rects = compose_side_by_side(
                clips,
                video,
                size=self.size,
                audio=audio,
                duration=duration,
                preset=PRESET,
                mix_gains=gains,
            )
            with atomic_write(meta) as f:  # after the video: a sidecar vouches for it
                json.dump({"clips": [str(c) for c in clips], "turns": turns, "rects": rects}, f)
        n_frames = round(duration * MODEL_FPS)
        labels = [
            looped_labels(self._clip_info(c)[0], src.duration, n_frames)
            for c, src in zip(clips, sources, strict=True)
        ]
        if turns:  # each face speaks only while it is heard
            owner = heard_tiles(turns, n_frames)
            labels = [y & (owner == i) for i, y in enumerate(labels)]
        return Scene(clips, tuple(map(tuple, turns)), video, tuple(rects), tuple(labels))

    def _turns(self, heard: int, n_faces: int, duration: float) -> list[tuple[float, int]]:
        """(start seconds, tile) of each turn: `heard` throughout, or passing every `turn` s."""
        if self.turn is None:
            return [(0.0, heard)]
        count = max(1, math.ceil(duration / self.turn - 1e-9))
        return [(round(j * self.turn, 6), (heard + j) % n_faces) for j in range(count)]

    def score(self, detector, scene: Scene) -> SceneScore:
        """Run the pipeline on one scene and put each track's probabilities on its tile."""
        result = detector(scene.path)
        probs = [np.full(scene.n_frames, np.nan) for _ in scene.clips]
        counts = [0] * scene.n_faces
        unmatched = 0
        for track in result.tracks:
            tile = tile_of(track.boxes, scene.rects)
            if tile is None:
                unmatched += 1
                continue
            counts[tile] += 1
            keep = track.frames < scene.n_frames
            frames = track.frames[keep]
            # Two tracks of one face on one frame (a duplicate detection): keep the higher.
            probs[tile][frames] = np.fmax(probs[tile][frames], track.probs[keep])
        return SceneScore(scene, probs, counts, unmatched)

    def run(self, detector, name: str | None = None) -> WhoSpeaksResult:
        """Score every scene with a `Detector` or a model spec `NAME` / `NAME=WEIGHTS`."""
        if isinstance(detector, str):
            from ..pipeline import Detector

            spec = detector
            model, _, weights = spec.partition("=")
            detector = Detector(model=model, weights=weights or None)
            name = name or model
        result = WhoSpeaksResult(name or detector.options.model)
        result.scenes = [self.score(detector, s) for s in self.scenes]
        for n in self.faces:
            picked = [s for s in result.scenes if s.scene.n_faces == n]
            result.share[n], result.maps[n] = _summary(picked)
        result.share_all, result.map_all = _summary(result.scenes)
        if self.together:
            for n in self.faces:
                result.called[n] = _called([s for s in result.scenes if s.scene.n_faces == n])
            result.called_all = _called(result.scenes)
        return result

    def describe(self) -> str:
        n_clips = sum(len(v) for v in self.identities.values())
        length = f"{self.duration:g} s" if self.duration else "as long as their shortest clip"
        dropped = (
            f" ({self.dropped} clip(s) given left out: not of a speaking test identity)"
            if self.dropped
            else ""
        )
        if self.together:
            voice = (
                "all heard at once, each in its own voice (the clips' audio summed, each "
                "voice's speech as loud as the others', as when people talk over each other), "
                "each labelled from its clip's word timings or Silero VAD"
            )
            measures = (
                "*Speech called*: share of the faces' speaking frames with a speaking "
                "probability ≥ 0.5 (`detect`'s threshold; no track: not called). *Silence "
                "called*: the same over their silent frames."
            )
        else:
            voice = (
                "under the voice of one of them (the heard face, labelled from its clip's word "
                "timings or Silero VAD); the others are labelled not speaking"
                if self.turn is None
                else f"as a conversation: the voice passes to the next face every "
                f"{self.turn:g} s, each face heard in its own voice, labelled from its clip's "
                "word timings or Silero VAD during its turns and not speaking outside them"
            )
            measures = (
                "*Heard first*: share of voiced frames on which the heard face has the strictly "
                "highest speaking probability among the tracked faces (no heard-face track: a "
                "miss; ranking at random gets 1/n with n faces, dashed in the plot)."
            )
        return (
            f"{self.n_scenes} scene(s) per number of faces ({', '.join(map(str, self.faces))}), "
            f"{length}, {self.size[0]}×{self.size[1]}, drawn with seed {self.seed} from "
            f"{n_clips} clip(s) of {len(self.identities)} test identities{dropped}. Each scene "
            f"shows faces of different identities side by side {voice}. {measures} *mAP*: "
            "pooled over every tracked face-frame."
        )


def report(test: WhoSpeaksTest, results: Sequence[WhoSpeaksResult]) -> Report:
    """Markdown table per model and number of faces, the scenes, and a bar chart."""
    if test.together:
        title = "Who speaks: several faces talking at once"
    elif test.turn is None:
        title = "Who speaks: one voice, several moving faces"
    else:
        title = "Who speaks: a conversation, the voice passing between moving faces"
    r = Report(title)
    r.text(test.describe())
    rows = []
    for res in results:
        for n, share, value, called in table_rows(res, test.faces):
            measured = [100 * x for x in called] if test.together else [100 * share]
            rows.append([res.model, n, *measured, value])
    measured = ["speech called (%)", "silence called (%)"] if test.together else ["heard first (%)"]
    r.table(["model", "faces", *measured, "mAP (%)"], rows)
    if test.turn is not None and results:
        r.text("Heard first by distance to the nearest change of voice (frames):")
        r.table(
            ["model", "frames from a change", "heard first (%)", "voiced frames"],
            [
                [res.model, f"{lo}–{hi - 1}" if hi is not None else f"≥ {lo}", 100 * share, n]
                for res in results
                for lo, hi, share, n in heard_first_by_distance(res.scenes)
            ],
        )
    if results:
        scene_rows = []
        for i, s in enumerate(results[0].scenes):
            names = [f"{c.parent.name}/{c.name}" for c in s.scene.clips]
            if s.scene.heard is not None:
                names[s.scene.heard] = f"**{names[s.scene.heard]}**"
            voiced = sum(int(y.sum()) for y in s.scene.labels)
            scene_rows.append(
                [i, ", ".join(names), voiced, "/".join(map(str, s.tracks_per_tile)), s.unmatched]
            )
        bold = "" if test.together else "heard clip, the first in a conversation, in bold; "
        r.text(f"Scenes ({bold}tracks as found for {results[0].model}):")
        r.table(["scene", "clips", "voiced frames", "tracks per tile", "unmatched"], scene_rows)
    if test.together:
        _, ax = r.figure("speech_called", "Share of the faces' speech called speaking")
    else:
        _, ax = r.figure("heard_first", "Share of voiced frames with the heard face first")
    width = 0.8 / max(len(results), 1)
    groups = [*map(str, test.faces), "all"]
    for j, res in enumerate(results):
        rows = table_rows(res, test.faces)
        values = [100 * (c[0] if test.together else x) for _, x, _, c in rows]
        ax.bar(np.arange(len(groups)) + j * width, values, width, label=res.model)
    if not test.together:  # a model that ranks the faces at random
        for k, n in enumerate(test.faces):
            left = k - width / 2
            ax.hlines(100 / n, left, left + 0.8, colors="k", linestyles="--", linewidth=1)
    ax.set_xticks(np.arange(len(groups)) + width * (len(results) - 1) / 2, groups)
    ax.set_xlabel("faces per scene")
    ax.set_ylabel("speech called speaking (%)" if test.together else "heard face first (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3, axis="y")
    if results:
        ax.legend()
    return r


def table_rows(
    result: WhoSpeaksResult, faces: Sequence[int]
) -> list[tuple[int | str, float, float, tuple[float, float]]]:
    """(faces or "all", heard-first share, mAP, (speech, silence) called) per row of a table."""
    nan = (float("nan"), float("nan"))
    rows: list[tuple[int | str, float, float, tuple[float, float]]] = [
        (n, result.share[n], result.maps[n], result.called.get(n, nan)) for n in faces
    ]
    return [*rows, ("all", result.share_all, result.map_all, result.called_all)]
