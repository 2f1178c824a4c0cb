"""The evaluation suite on the TEST identities of ../shared/data (`--split val`: the validation
identities), for every registered model that has weights here (ours bundled, the peers' in
../shared/data/weights).

Material (the package's identity split, `syncasd/data/splits/shared.json`; labels: see
syncasd.data.labelled), none of it ever trained or validated on:
- VASP test identities ID1-ID6, the first CLIPS_PER_IDENTITY clips each, VoxCeleb2 id00100
  (the same), StyleTalk's Obama clips (Silero VAD labels);
- all 11 GRID and 10 LRS2 clips (word timings where given, Silero VAD otherwise);
- LivePortrait d20 (speech, VAD labels) and the test faces that never speak (music bed:
  d6, d10, d11; silent: d3), labelled negative.

Protocols: the unsynchronization test (mAP at 0-100 % mismatched / misaligned), the ablations
(silenced audio, lips masked) with the VAD × lip-movement baseline, dubbed-video detection
(a seeded third of the speaking clips dubbed: their voices replaced by others', labels kept, as
annotators label dubbed films; clips ranked by TPR), and who-speaks (2 and 3 test-identity
faces side by side under one face's voice, through the whole pipeline) and its conversations
(8 s scenes whose voice passes to the next face every 2 s, each face heard in its own voice
during its turns) and crosstalk (the who-speaks faces all heard at once, each in its own voice
and as loud: the share of their speech and of their silence called speaking at 0.5). Reports
go to
bench/results/eval/, and the summary table printed last is the README's.

    python bench/eval_suite.py [--quick]   # --quick: 1 clip per identity, 2 models, 4 scenes
    python bench/eval_suite.py --split val # the same on the validation identities, where
                                           # candidates are chosen (bench/results/eval-val/)
    python bench/eval_suite.py --split val --scenes 50  # 100 scenes of each kind: between
                                           # two close candidates, 20 decide on noise
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

from syncasd.data.labelled import tracks_from_clips
from syncasd.data.splits import Split, identity_of
from syncasd.data.unsync import mismatch
from syncasd.evaluate import ablations, dubbing, unsync, whospeaks
from syncasd.evaluate.baselines import VadLipBaseline
from syncasd.evaluate.report import Report, markdown_table
from syncasd.evaluate.tracks import asd_scorer, model_scorer, score_tracks
from syncasd.models import load_model
from syncasd.models.layers import ASDModel
from syncasd.pipeline import Detector

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OUT = Path(__file__).resolve().parent / "results" / "eval"
CLIPS = DATA / "clips"
WEIGHTS = DATA / "weights"
# Registry checkpoints whose files are in ../shared/data/weights.
MODELS = {
    "sync-light-asd-talknet-gated": None,  # ours, the default, bundled in the package
    "sync-light-asd-talknet-icgated": None,  # ours, bundled: the default with ic-syncnet's gate
    "sync-light-asd-gated": None,  # ours, bundled: the default without its attention half
    "sync-light-asd-ensemble": None,  # ours, bundled: sync-light-asd-gated without its gate
    "sync-light-asd": None,  # ours, bundled
    "light-asd.ava": WEIGHTS / "light_asd_ava.model",
    "light-asd.talkset": WEIGHTS / "light_asd_talkset.model",
    "lr-asd.ava": WEIGHTS / "lr_asd_ava.model",
    "lr-asd.talkset": WEIGHTS / "lr_asd_talkset.model",
}
SEED = 0
TURN_S = 2.0  # conversation scenes: seconds per turn
# Folders whose every test clip is taken; elsewhere the first CLIPS_PER_IDENTITY per identity.
WHOLE = ("grid", "lrs2", "liveportrait")


def model_spec(name: str, path: Path | None = None) -> str:
    """`model_scorer`'s spec of a model: NAME, or NAME=CHECKPOINT where its file is given (as
    `path` or already in `name`) or in ../shared/data/weights (MODELS)."""
    if "=" in name:
        return name
    path = path or MODELS.get(name)
    return f"{name}={path}" if path else name


def material(clips_per_identity: int, part: str = "test") -> list:
    split = Split.load()
    speaking, negatives, taken = [], [], {}
    for clip in split.clips(CLIPS, part):
        identity = identity_of(clip)
        if not identity.startswith(WHOLE):
            taken[identity] = taken.get(identity, 0) + 1
            if taken[identity] > clips_per_identity:
                continue
        (negatives if split.is_negative(clip) else speaking).append(clip)
    # Scores nothing here; crops only.
    options = {"model": "light-asd", "weights": str(MODELS["light-asd.ava"])}
    return tracks_from_clips(speaking, **options) + tracks_from_clips(
        negatives, negative=True, **options
    )


def dubbed_set(tracks: list, seed: int) -> tuple[list, set[str]]:
    """A seeded third of the speaking tracks dubbed (voice from another video, labels kept)."""
    rng = np.random.default_rng(seed)
    speaking = [i for i, t in enumerate(tracks) if t.labels.any()]
    chosen = set(rng.choice(speaking, size=len(speaking) // 3, replace=False).tolist())
    twins = mismatch(tracks, rng, keep_labels=True)
    out = [twins[i] if i in chosen else t for i, t in enumerate(tracks)]
    return out, {tracks[i].video_id for i in chosen}


def dubbed_ranking(scorer, dubbed_tracks: list) -> list[dubbing.VideoTPR]:
    """Each clip's TPR at 0.5 under `scorer`, lowest first (the dubbing test's ranking)."""
    scores = np.concatenate(score_tracks(scorer, dubbed_tracks))
    videos = np.concatenate([[t.video_id] * len(t) for t in dubbed_tracks])
    labels = np.concatenate([t.labels for t in dubbed_tracks])
    return dubbing.video_tprs(videos, labels, scores >= 0.5)


def candidate_detector(model: ASDModel) -> Detector:
    """A `Detector` (torch) that scores with `model`, a candidate not in the registry."""
    detector = Detector(model="sync-light-asd-gated", backend="torch")
    detector.model = model.eval()
    return detector


def main(argv: list[str] | None = None, candidates: dict[str, ASDModel] | None = None) -> int:
    """The suite; `candidates` (name → model, scored with torch) join the models named in
    `argv` (bench/screen_talk_term.py hands over models built in Python)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="NAME[=PATH]",
        help="only these models (repeatable), e.g. a candidate: sync-light-asd=runs/x/model.pt",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip VAD × lip movement")
    parser.add_argument(
        "--scenes",
        type=int,
        default=10,
        metavar="N",
        help="composed scenes per face count (2 and 3) in who-speaks, conversations and "
        "crosstalk; 10 gives the published rows, but between two close candidates 10 is noise "
        "(a paired bootstrap over 20 scenes spanned 10 points of mAP): decide on 50",
    )
    parser.add_argument(
        "--split",
        choices=("test", "val"),
        default="test",
        help="identities: test (published numbers) or val (choosing between candidates)",
    )
    args = parser.parse_args(argv)
    candidates = candidates or {}
    out = OUT if args.split == "test" else OUT.with_name("eval-val")
    if not DATA.exists():
        print(f"needs {DATA}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    models = dict(list(MODELS.items())[:2]) if args.quick else MODELS
    if args.model or candidates:
        models = {}
        for spec in args.model or []:  # a candidate keeps its path in its name: two of one model
            name, _, path = spec.partition("=")
            models[spec] = Path(path) if path else MODELS.get(name)
    t0 = time.perf_counter()
    # Test: a few clips per identity (the published table); val: every clip, as candidates
    # were chosen on.
    per_identity = 1 if args.quick else 3 if args.split == "test" else 10**6
    tracks = material(per_identity, args.split)
    scene_clips = Split.load().clips(CLIPS, args.split)
    n_scenes = 2 if args.quick else args.scenes
    scenes = whospeaks.WhoSpeaksTest(
        scene_clips, scenes=n_scenes, seed=SEED, duration=4.0, part=args.split
    )
    # Conversations: the voice passes to the next face every 2 s, each face in its own voice.
    talks = whospeaks.WhoSpeaksTest(
        scene_clips, scenes=n_scenes, seed=SEED, duration=8.0, part=args.split, turn=TURN_S
    )
    # Crosstalk: the same kind of scenes, every face heard at once in its own voice.
    crosstalk = whospeaks.WhoSpeaksTest(
        scene_clips, scenes=n_scenes, seed=SEED, duration=4.0, part=args.split, together=True
    )
    n_frames = sum(len(t) for t in tracks)
    n_pos = sum(int(t.labels.sum()) for t in tracks)
    print(
        f"{len(tracks)} tracks, {n_frames} frames, {n_pos / n_frames:.1%} speaking "
        f"({time.perf_counter() - t0:.0f} s to extract)",
        flush=True,
    )

    specs = {name: model_spec(name, path) for name, path in models.items()}
    scorers = [(name, model_scorer(spec)[1]) for name, spec in specs.items()]
    scorers += [(name, asd_scorer(model.eval())) for name, model in candidates.items()]
    detectors = specs | {name: candidate_detector(m) for name, m in candidates.items()}
    # The baseline's lip-movement half: Light-ASD's (AVA) visual-only head.
    baseline = VadLipBaseline(load_model("light-asd", weights=MODELS["light-asd.ava"]))
    if not args.no_baseline:
        scorers.append(("VAD × lip movement", baseline))

    test = unsync.UnsyncTest(tracks, seed=SEED)
    dubbed_tracks, dubbed = dubbed_set(tracks, SEED)
    summary = []
    unsync_results, ablation_results, dubbing_reports = [], [], []
    who_results, talk_results, cross_results = [], [], []
    for name, scorer in scorers:
        t1 = time.perf_counter()
        original = score_tracks(scorer, tracks)  # shared by both protocols
        u = test.run(scorer, name, original)
        a = ablations.ablate(scorer, tracks, name, original)
        ranked = dubbed_ranking(scorer, dubbed_tracks)
        sep = dubbing.separation(ranked, dubbed)
        who = scenes.run(detectors[name], name) if name in detectors else None
        talk = talks.run(detectors[name], name) if name in detectors else None
        cross = crosstalk.run(detectors[name], name) if name in detectors else None
        if who is not None:
            who_results.append(who)
            talk_results.append(talk)
            cross_results.append(cross)
        unsync_results.append(u)
        ablation_results.append(a)
        dubbing_reports.append((name, ranked))
        half = test.shares.index(50)
        summary.append(
            [
                name,
                a.maps["original"],
                u.maps["mismatch"][half],
                u.maps["misalign"][half],
                a.maps["silenced audio"],
                a.maps["lips masked"],
                sep["auroc"],
                100 * who.share_all if who else float("nan"),
                who.map_all if who else float("nan"),
                100 * talk.share_all if talk else float("nan"),
                talk.map_all if talk else float("nan"),
                100 * cross.called_all[0] if cross else float("nan"),  # speech called
                100 * cross.called_all[1] if cross else float("nan"),  # silence called
            ]
        )
        print(f"{name}: {summary[-1][1:]} ({time.perf_counter() - t1:.0f} s)", flush=True)

    unsync.report(test, unsync_results).save(out / "unsync")
    ablations.report(tracks, ablation_results).save(out / "ablate")
    whospeaks.report(scenes, who_results).save(out / "whospeaks")
    whospeaks.report(talks, talk_results).save(out / "conversation")
    whospeaks.report(crosstalk, cross_results).save(out / "crosstalk")
    for name, ranked in dubbing_reports:
        slug = name.replace(" ", "_").replace("×", "x")
        dubbing.report(ranked, name, dubbed).save(out / "dubbing" / slug)

    headers = [
        "model",
        "mAP original",
        "mAP 50 % mismatched",
        "mAP 50 % misaligned",
        "mAP silenced audio",
        "mAP lips masked",
        "dubbed-video AUROC",
        "who-speaks heard first %",
        "who-speaks mAP",
        "conversation heard first %",
        "conversation mAP",
        "crosstalk speech called %",
        "crosstalk silence called %",
    ]
    r = Report(f"Evaluation suite on ../shared/data, {args.split} identities")
    r.text(
        f"{len(tracks)} face tracks, {n_frames} frames, {n_pos / n_frames:.1%} labelled speaking; "
        f"seed {SEED}; {len(dubbed)} clips dubbed for the dubbing test. Details: "
        "[unsync](unsync/report.md), [ablations](ablate/report.md), "
        "[who-speaks](whospeaks/report.md), [conversation](conversation/report.md), "
        "[crosstalk](crosstalk/report.md), "
        "dubbing/<model>/report.md."
    )
    r.table(headers, summary)
    path = r.save(out)
    print(f"\nreport: {path}  ({time.perf_counter() - t0:.0f} s in all)\n")
    print(markdown_table(headers, summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
