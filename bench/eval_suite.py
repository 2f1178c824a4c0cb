"""The evaluation suite on ../shared/data, for every registered model that has weights there.

Material (labels: see syncasd.data.labelled):
- VASP identities ID1-ID10, the first CLIPS_PER_IDENTITY clips each (Silero VAD labels);
- all 11 GRID and 10 LRS2 clips (word timings where given, Silero VAD otherwise);
- LivePortrait d20 (speech, VAD labels) and the eight whose face never speaks (music bed:
  d6, d10, d11, d12, d14; silent: d3, d18, d19), labelled negative.

Protocols: the unsynchronization test (mAP at 0-100 % mismatched / misaligned), the ablations
(silenced audio, lips masked) with the VAD × lip-movement baseline, and dubbed-video detection
(a seeded third of the speaking clips dubbed: their voices replaced by others', labels kept, as
annotators label dubbed films; clips ranked by TPR). Reports go to bench/results/eval/, and the
summary table printed last is the README's.

    python bench/eval_suite.py [--quick]   # --quick: 2 VASP clips per identity, 2 models
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

from syncasd.data.labelled import tracks_from_clips
from syncasd.data.unsync import mismatch
from syncasd.evaluate import ablations, dubbing, unsync
from syncasd.evaluate.baselines import VadLipBaseline
from syncasd.evaluate.report import Report, markdown_table
from syncasd.evaluate.tracks import model_scorer, score_tracks
from syncasd.models import load_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OUT = Path(__file__).resolve().parent / "results" / "eval"
CLIPS = DATA / "clips"
WEIGHTS = DATA / "weights"
# Registry checkpoints whose files are in ../shared/data/weights.
MODELS = {
    "light-asd.ava": WEIGHTS / "light_asd_ava.model",
    "light-asd.talkset": WEIGHTS / "light_asd_talkset.model",
    "lr-asd.ava": WEIGHTS / "lr_asd_ava.model",
    "lr-asd.talkset": WEIGHTS / "lr_asd_talkset.model",
}
NEGATIVE_CLIPS = ["d6", "d10", "d11", "d12", "d14", "d3", "d18", "d19"]
SEED = 0


def material(clips_per_identity: int) -> list:
    speaking = [
        clip
        for i in range(1, 11)
        for clip in sorted((CLIPS / "vasp" / f"ID{i}").glob("*.mp4"))[:clips_per_identity]
    ]
    speaking += sorted((CLIPS / "grid").glob("*.mpg")) + sorted((CLIPS / "lrs2").glob("*.mp4"))
    speaking.append(CLIPS / "liveportrait" / "d20.mp4")
    negatives = [CLIPS / "liveportrait" / f"{n}.mp4" for n in NEGATIVE_CLIPS]
    options = {"weights": str(MODELS["light-asd.ava"])}  # scores nothing here; crops only
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if not DATA.exists():
        print(f"needs {DATA}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    models = dict(list(MODELS.items())[:2]) if args.quick else MODELS
    t0 = time.perf_counter()
    tracks = material(2 if args.quick else 3)
    n_frames = sum(len(t) for t in tracks)
    n_pos = sum(int(t.labels.sum()) for t in tracks)
    print(
        f"{len(tracks)} tracks, {n_frames} frames, {n_pos / n_frames:.1%} speaking "
        f"({time.perf_counter() - t0:.0f} s to extract)",
        flush=True,
    )

    scorers = [model_scorer(f"{name}={path}") for name, path in models.items()]
    # The baseline's lip-movement half: Light-ASD's (AVA) visual-only head.
    baseline = VadLipBaseline(load_model("light-asd", weights=MODELS["light-asd.ava"]))
    scorers.append(("VAD × lip movement", baseline))

    test = unsync.UnsyncTest(tracks, seed=SEED)
    dubbed_tracks, dubbed = dubbed_set(tracks, SEED)
    summary = []
    unsync_results, ablation_results, dubbing_reports = [], [], []
    for name, scorer in scorers:
        t1 = time.perf_counter()
        original = score_tracks(scorer, tracks)  # shared by both protocols
        u = test.run(scorer, name, original)
        a = ablations.ablate(scorer, tracks, name, original)
        scores = score_tracks(scorer, dubbed_tracks)
        videos = np.concatenate([[t.video_id] * len(t) for t in dubbed_tracks])
        labels = np.concatenate([t.labels for t in dubbed_tracks])
        ranked = dubbing.video_tprs(videos, labels, np.concatenate(scores) >= 0.5)
        sep = dubbing.separation(ranked, dubbed)
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
            ]
        )
        print(f"{name}: {summary[-1][1:]} ({time.perf_counter() - t1:.0f} s)", flush=True)

    unsync.report(test, unsync_results).save(OUT / "unsync")
    ablations.report(tracks, ablation_results).save(OUT / "ablate")
    for name, ranked in dubbing_reports:
        slug = name.replace(" ", "_").replace("×", "x")
        dubbing.report(ranked, name, dubbed).save(OUT / "dubbing" / slug)

    headers = [
        "model",
        "mAP original",
        "mAP 50 % mismatched",
        "mAP 50 % misaligned",
        "mAP silenced audio",
        "mAP lips masked",
        "dubbed-video AUROC",
    ]
    r = Report("Evaluation suite on ../shared/data")
    r.text(
        f"{len(tracks)} face tracks, {n_frames} frames, {n_pos / n_frames:.1%} labelled speaking; "
        f"seed {SEED}; {len(dubbed)} clips dubbed for the dubbing test. Details: "
        "[unsync](unsync/report.md), [ablations](ablate/report.md), dubbing/<model>/report.md."
    )
    r.table(headers, summary)
    path = r.save(OUT)
    print(f"\nreport: {path}  ({time.perf_counter() - t0:.0f} s in all)\n")
    print(markdown_table(headers, summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
