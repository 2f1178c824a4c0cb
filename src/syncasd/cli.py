"""The `syncasd` command. Thin: parses options, calls the library, prints."""

from __future__ import annotations

import logging
import os
import sys
from collections import Counter
from dataclasses import fields
from pathlib import Path
from typing import Annotated

import typer

from .defaults import (
    DEFAULT_ALIGN_MODEL,
    DEFAULT_MODEL,
    DEFAULT_SCAN_MODEL,
    DEFAULT_SYNC_MODEL,
    SYNC_TRAINABLE,
    TRAINABLE,
)
from .errors import SyncASDError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Synchronization-aware active speaker detection: who speaks when, in any video.",
    pretty_exceptions_enable=False,
)
log = logging.getLogger("syncasd")

EXIT_ERROR = 2


def no_speaker_note(result) -> str:
    """Why a sync-aware model found faces but no speaking turn, and what to try next.

    It drops every face of a video whose soundtrack is offset: say how to tell that apart
    from a video where nobody on screen speaks, given what --align has already tried."""
    alignment = result.metadata.get("alignment")
    if alignment is None:
        return (
            "no face speaks in sync with the audio. If someone on screen does speak, the "
            "soundtrack may be offset: `syncasd sync VIDEO` measures it and `--fix OUT` "
            "repairs it, or detect again with --align."
        )
    offset = alignment["offset_frames"]
    if alignment["speech_frames"] and not alignment["applied"]:
        return (
            f"no face speaks in sync with the audio, though --align read the soundtrack in "
            f"sync (offset {offset:+d} frames): the lips follow the voice too weakly to reach "
            "--threshold."
        )
    tried = (
        f"even with the audio moved by {offset:+d} frames (--align)"
        if alignment["applied"]
        else "and --align found no face whose lips follow the voice at any offset it searched"
    )
    return (
        f"no face speaks in sync with the audio, {tried}: the voice is likely no one's on "
        "screen (a narrator, a dub), or off by more than --sync-max-offset frames "
        "(`syncasd sync VIDEO --max-offset 50` measures further)."
    )


def _fail(message: str) -> None:
    typer.echo(f"syncasd: error: {message}", err=True)


# Options several commands share.
WeightsOption = Annotated[
    Path | None, typer.Option(help="Local checkpoint file; skips the download.")
]
AudioLagOption = Annotated[
    float | None,
    typer.Option(
        help="How late the audio of the weights' training clips was (ms): the audio is delayed "
        "as much before scoring, so that offset 0 means in sync. Default: the registry's (40 "
        "for our weights, 0 for the peers' and for other --weights files)."
    ),
]
DeviceOption = Annotated[str, typer.Option(help="Torch device: cpu, cuda, cuda:1, mps.")]
AudioStreamOption = Annotated[
    int | None,
    typer.Option(
        help="The audio track to hear, counting audio tracks from 0 (a film's original voices "
        "and its dubs); default: the one flagged default, as players choose, else the first.",
        show_default=False,
    ),
]
DetectEveryOption = Annotated[
    int,
    typer.Option(
        help="Run the face detector every N model frames; boxes in between are interpolated."
    ),
]
StartOption = Annotated[float, typer.Option(help="Start of the analysed interval (s).")]
IntervalOption = Annotated[
    float | None, typer.Option(help="Length of the analysed interval (s); default: to the end.")
]
MinTrackOption = Annotated[
    int, typer.Option(help="Drop face tracks shorter than this (frames at 25 fps).")
]
AllowSilentOption = Annotated[
    bool,
    typer.Option(help="Analyse videos whose audio is digital silence instead of refusing them."),
]
ThreadsOption = Annotated[int, typer.Option(help="CPU threads for models (0 = library default).")]
ProgressOption = Annotated[bool, typer.Option(help="Show progress bars.")]


@app.command()
def detect(
    videos: Annotated[
        list[Path],
        typer.Argument(
            help="Input video file(s), anything FFmpeg reads, or folders of them (searched "
            "recursively)."
        ),
    ],
    out: Annotated[
        Path, typer.Option("-o", "--out", help="Output folder (created if needed).")
    ] = Path("out"),
    model: Annotated[
        str,
        typer.Option(
            help=f"Registry model name (`syncasd models` lists them): ours, sync-aware, "
            f"{DEFAULT_MODEL} (the default), sync-light-asd-talknet-gated (light-syncnet's "
            "lip gate; the default until 7 Dec 2026), sync-light-talknet-gated (conversations); "
            "the peers' light-asd, light-asd.talkset, lr-asd, …"
        ),
    ] = DEFAULT_MODEL,
    weights: WeightsOption = None,
    device: DeviceOption = "cpu",
    backend: Annotated[
        str,
        typer.Option(
            help="Inference backend: auto (ONNX Runtime on CPU, torch elsewhere), torch or ort."
        ),
    ] = "auto",
    start: StartOption = 0.0,
    duration: IntervalOption = None,
    detect_every: DetectEveryOption = 2,
    detector_size: Annotated[
        int, typer.Option(help="Longer side (px) of the downscaled copy the face detector sees.")
    ] = 640,
    zoom_size: Annotated[
        int,
        typer.Option(
            help="Longer side (px) the face detector uses in shots whose faces are too small "
            "for --detector-size (a probe at this size on each shot's first frame and every "
            "4 s finds them); 0: never."
        ),
    ] = 1280,
    face_threshold: Annotated[
        float, typer.Option(help="Face detector confidence threshold.")
    ] = 0.9,
    min_face: Annotated[
        float, typer.Option(help="Ignore faces smaller than this (px, shorter box side).")
    ] = 0.0,
    faces: Annotated[
        Path | None,
        typer.Option(help="Use these face boxes (AVA CSV layout) instead of detecting faces."),
    ] = None,
    min_track: MinTrackOption = 10,
    max_gap: Annotated[
        int, typer.Option(help="Bridge detection gaps up to this many frames inside a track.")
    ] = 10,
    iou: Annotated[float, typer.Option(help="Minimum IoU to continue a track.")] = 0.5,
    shot_threshold: Annotated[
        float, typer.Option(help="PySceneDetect content threshold for shot cuts.")
    ] = 27.0,
    scoring: Annotated[
        str,
        typer.Option(
            help="chunk: one pass over overlapping windows; "
            "demo: the peers' 6-duration average + smoothing."
        ),
    ] = "chunk",
    window: Annotated[float, typer.Option(help="Scoring window (s) for --scoring chunk.")] = 6.0,
    threshold: Annotated[float, typer.Option(help="Speaking when probability >= this.")] = 0.5,
    min_turn: Annotated[
        float, typer.Option(help="RTTM: drop speaking turns shorter than this (s).")
    ] = 0.0,
    merge_gap: Annotated[
        float, typer.Option(help="RTTM: merge turns of a face separated by at most this (s).")
    ] = 0.0,
    allow_silent: AllowSilentOption = False,
    audio_stream: AudioStreamOption = None,
    sync: Annotated[
        bool,
        typer.Option(
            help="Also measure each track's audio-visual sync: sync_offset / sync_prob columns "
            "in the CSV, a sync object and sync_probs in the JSON (slower: every offset scored)."
        ),
    ] = False,
    require_sync: Annotated[
        bool,
        typer.Option(
            help="A face whose lips are not in sync with the voice (within ±1 frame) is not "
            "speaking: probability = min(ASD, in-sync probability). Implies --sync."
        ),
    ] = False,
    sync_model: Annotated[
        str, typer.Option(help="Sync backend for --sync: ic-syncnet or an ASD model.")
    ] = DEFAULT_SYNC_MODEL,
    sync_max_offset: Annotated[
        int, typer.Option(help="--sync searches offsets -N..N frames (40 ms each).")
    ] = 15,
    align: Annotated[
        bool,
        typer.Option(
            help="For a video whose whole soundtrack is off: measure the offset on the faces "
            "that hear their own voice and score every face on the audio moved by it (2 frames "
            "or more); the offset is in the JSON metadata. Not for dubbed or narrated video, "
            "whose faces it may call speaking."
        ),
    ] = False,
    align_model: Annotated[
        str, typer.Option(help="Sync backend that measures the offset for --align.")
    ] = DEFAULT_ALIGN_MODEL,
    render: Annotated[
        bool, typer.Option(help="Also write OUT/<stem>.mp4 with boxes and the original audio.")
    ] = False,
    batch: Annotated[
        int, typer.Option(help="Frames per face-detector call (batched inference).")
    ] = 4,
    threads: ThreadsOption = 0,
    progress: ProgressOption = True,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Log stage timings.")] = False,
) -> None:
    """Find the faces in each video and say, frame by frame, whether each one is speaking.

    Writes OUT/<stem>.csv (AVA-ActiveSpeaker layout), OUT/<stem>.json and OUT/<stem>.rttm,
    and with --render OUT/<stem>.mp4.
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    from .models import get_spec
    from .pipeline import DetectOptions, Detector, no_track_reason
    from .render import render_video
    from .results import get_writer

    # The CLI options are DetectOptions' fields under the same names, but for two paths.
    chosen = {k: v for k, v in locals().items() if k in {f.name for f in fields(DetectOptions)}}
    chosen["weights"] = str(weights) if weights else None
    chosen["faces_csv"] = str(faces) if faces else None
    try:
        detector = Detector(**chosen)
    except SyncASDError as e:
        _fail(str(e))
        raise typer.Exit(EXIT_ERROR) from None

    sync_aware = get_spec(model).sync_aware or require_sync
    videos = _videos(videos)
    names = output_names(videos)
    failed = 0
    for video, name in zip(videos, names, strict=True):
        try:
            result = detector(video)
            result.video_id = name  # the stem, unless another input shares it
            out.mkdir(parents=True, exist_ok=True)
            stem = out / name
            # The slow, failure-prone output first: a failed render leaves no files at all.
            # (Names are joined, not `with_suffix`: a stem may hold dots, `talk.part1`.)
            if render:
                render_video(result, out / f"{name}.mp4", progress=progress)
            for fmt in ("csv", "json", "rttm"):
                get_writer(fmt)(result, out / f"{name}.{fmt}")
        except SyncASDError as e:
            _fail(str(e))
            failed += 1
            continue
        except OSError as e:
            _fail(f"{video}: cannot write outputs to {out}: {e.strerror or e}")
            failed += 1
            continue
        if not result.tracks:
            reason = no_track_reason(result)
            typer.echo(f"syncasd: warning: {video}: {reason}; outputs are empty", err=True)
        elif not result.turns and sync_aware and not allow_silent:
            typer.echo(f"syncasd: note: {video}: {no_speaker_note(result)}", err=True)
        summary = (
            f"{video}: {len(result.tracks)} face track(s), {len(result.turns)} speaking turn(s), "
            f"{result.metadata['real_time_factor']}x real time → {stem}.csv"
        )
        source = result.metadata["source"]
        if heard := heard_track(
            source["audio_stream"], source["audio_streams"], source["audio_language"]
        ):
            summary += f"; {heard} (--audio-stream)"
        if (moved := result.metadata.get("alignment")) and moved["applied"]:
            summary += f"; audio moved by {moved['offset_frames']:+d} frames (--align)"
        typer.echo(summary, err=True)
    if failed:
        raise typer.Exit(EXIT_ERROR)


@app.command("models")
def list_models() -> None:
    """List the registered models, their checkpoints and licences."""
    from .models.zoo import REGISTRY, cache_dir

    for spec in REGISTRY.values():
        typer.echo(f"{spec.name}: {spec.description}")
        typer.echo(f"  licence: {spec.license}; paper: {spec.paper}")
        for tag, ckpt in spec.checkpoints.items():
            default = " (default)" if tag == spec.default_checkpoint else ""
            if ckpt.bundled:
                cached = f"bundled, part of {ckpt.filename}" if ckpt.subtrees else "bundled"
            else:
                cached = "cached" if (cache_dir() / ckpt.filename).exists() else "not downloaded"
            if ckpt.audio_lag_ms:  # the clock the sync backends read these weights on
                cached += f"; trained on audio {ckpt.audio_lag_ms:g} ms late"
            typer.echo(f"  {spec.name}.{tag}{default}: {ckpt.description} [{cached}]")


@app.command()
def download(
    names: Annotated[list[str], typer.Argument(help="Model names, e.g. light-asd.ava.")],
) -> None:
    """Fetch published checkpoints into the cache ($SYNCASD_CACHE or ~/.cache/syncasd)."""
    from .models.zoo import download as fetch

    try:
        for name in names:
            typer.echo(str(fetch(name)))
    except SyncASDError as e:
        _fail(str(e))
        raise typer.Exit(EXIT_ERROR) from None


@app.command()
def export(
    name: Annotated[str, typer.Argument(help="Registry model name, e.g. light-asd.")],
    onnx: Annotated[Path, typer.Option(help="Where to write the ONNX model.")],
    weights: Annotated[
        Path | None, typer.Option(help="Local checkpoint file; default: the published one.")
    ] = None,
) -> None:
    """Export a model's frame_logits(video, mfcc) to ONNX (dynamic number of frames)."""
    from .models import load_model
    from .models.onnx import export_onnx

    try:
        model = load_model(name, weights=weights, kind="asd")
        export_onnx(model, onnx)
    except SyncASDError as e:
        _fail(str(e))
        raise typer.Exit(EXIT_ERROR) from None
    except OSError as e:
        _fail(f"cannot write {onnx}: {e.strerror or e}")
        raise typer.Exit(EXIT_ERROR) from None
    typer.echo(str(onnx))


@app.command()
def train(
    model: Annotated[
        str,
        typer.Argument(help=f"Architecture to train: {', '.join(TRAINABLE + SYNC_TRAINABLE)}."),
    ],
    config: Annotated[
        Path,
        typer.Option(help="YAML config, or the name of a shipped one (e.g. sync-light-asd)."),
    ],
    output: Annotated[
        Path | None, typer.Option(help="Run folder (checkpoints, logs, model.pt).")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Override the config's epochs.")] = None,
    devices: Annotated[str, typer.Option(help="Devices per node: a count or 'auto'.")] = "1",
    num_nodes: Annotated[int, typer.Option(help="Machines taking part (DDP).")] = 1,
    strategy: Annotated[
        str, typer.Option(help="Lightning strategy: auto, ddp, ddp_spawn, …")
    ] = "auto",
    accelerator: Annotated[str, typer.Option(help="cpu, gpu, auto.")] = "cpu",
    progress: ProgressOption = True,
    prepare: Annotated[
        bool,
        typer.Option(
            help="Only build the data (the corpus; the sync pack of a data.pack config) and "
            "print where it is, e.g. to carry a pack to a GPU machine."
        ),
    ] = False,
) -> None:
    """Train (or resume) a model; the best validation epoch is exported as model.pt."""
    from .train import TrainConfig
    from .train import prepare as build_data
    from .train import train as run

    overrides: dict[str, object] = {"model": model}
    if output is not None:
        overrides["output"] = str(output)
    if epochs is not None:
        overrides["epochs"] = epochs
    try:
        cfg = TrainConfig.load(config, overrides)
        if prepare:
            typer.echo(str(build_data(cfg, progress=progress)))
            return
        weights = run(
            cfg,
            devices=int(devices) if devices.isdigit() else devices,
            num_nodes=num_nodes,
            strategy=strategy,
            accelerator=accelerator,
            progress=progress,
        )
    except SyncASDError as e:
        _fail(str(e))
        raise typer.Exit(EXIT_ERROR) from None
    typer.echo(str(weights))


eval_app = typer.Typer(no_args_is_help=True, help="Evaluation protocols.")
app.add_typer(eval_app, name="eval")


ReportOption = Annotated[
    Path | None, typer.Option(help="Write a Markdown report with plots into this folder.")
]


def _save_report(report, folder: Path | None) -> None:
    if folder is not None:
        typer.echo(f"report: {report.save(folder)}", err=True)


@eval_app.command("ava")
def eval_ava(
    gt: Annotated[Path, typer.Option(help="Ground truth, AVA-ActiveSpeaker CSV layout.")],
    pred: Annotated[Path, typer.Option(help="Predictions with a score column (our detect CSV).")],
    report: ReportOption = None,
) -> None:
    """The official AVA-ActiveSpeaker mAP; printed last as `mAP: NN.NN%`."""
    from .evaluate.ava_map import ava_map
    from .evaluate.report import Report

    try:
        value = ava_map(gt, pred)
        if report is not None:
            r = Report("AVA-ActiveSpeaker mAP")
            r.text(f"Ground truth `{gt}`, predictions `{pred}`: **mAP {value:.2f} %**.")
            _save_report(r, report)
    except SyncASDError as e:
        _fail(str(e))
        raise typer.Exit(EXIT_ERROR) from None
    typer.echo(f"mAP: {value:.2f}%")


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not WIDTHxHEIGHT, e.g. 640x360") from None
    return w, h


@eval_app.command("columbia")
def eval_columbia(
    labels: Annotated[Path, typer.Option(help="Folder of Columbia label files <speaker>.txt.")],
    pred: Annotated[Path, typer.Option(help="Our detect CSV for the Columbia video.")],
    label_size: Annotated[
        str, typer.Option(help="Frame size the label boxes refer to, WIDTHxHEIGHT.")
    ] = "640x360",
    fps: Annotated[float, typer.Option(help="Frame rate of the label frame numbers.")] = 29.97,
    exclude: Annotated[
        list[str], typer.Option(help="Speakers left out of the average (repeatable).")
    ] = ["abbas"],  # noqa: B006 (typer reads the default, never mutates it)
    video_id: Annotated[
        str | None, typer.Option(help="Which video of the CSV, if it holds several.")
    ] = None,
    report: ReportOption = None,
) -> None:
    """Columbia ASD: F1 per speaker (TalkNet's protocol); printed last as `Average F1:NN.NN`."""
    from .evaluate import columbia

    try:
        result = columbia.columbia_f1(
            labels,
            pred,
            label_size=_size(label_size),
            fps=fps,
            exclude=tuple(exclude),
            video_id=video_id,
        )
        _save_report(columbia.report(result), report)
    except SyncASDError as e:
        _fail(str(e))
        raise typer.Exit(EXIT_ERROR) from None
    for line in columbia.format_lines(result):
        typer.echo(line)


@eval_app.command("dubbing")
def eval_dubbing(
    gt: Annotated[Path, typer.Option(help="Ground truth, AVA-ActiveSpeaker CSV layout.")],
    pred: Annotated[Path, typer.Option(help="Predictions with a score column (our detect CSV).")],
    threshold: Annotated[float, typer.Option(help="Speaking when score >= this.")] = 0.5,
    dubbed: Annotated[
        list[str] | None, typer.Option(help="Video ids known to be dubbed (repeatable).")
    ] = None,
    report: ReportOption = None,
) -> None:
    """Rank videos by true-positive rate: the lowest are likely dubbed or narrated."""
    from .evaluate import dubbing as dub

    try:
        ranked = dub.tprs_from_csv(gt, pred, threshold)
        if report is not None:
            _save_report(dub.report(ranked, dubbed=set(dubbed or ())), report)
    except (SyncASDError, ValueError) as e:
        _fail(str(e))
        raise typer.Exit(EXIT_ERROR) from None
    for line in dub.format_ranking(ranked):
        typer.echo(line)


def heard_track(stream: int | None, streams: int, language: str | None = None) -> str:
    """ "heard audio track 1 (fra) of 2" where a file has several audio tracks, else ""."""
    if streams < 2:
        return ""
    return f"heard audio track {stream}{f' ({language})' if language else ''} of {streams}"


def output_names(videos: list[Path]) -> list[str]:
    """One output name per video: its stem, or, where videos share a stem, the stem prefixed by
    as many of its folders as tell them apart (`a/ID1/014.mp4`, `a/ID2/014.mp4`: `ID1_014`,
    `ID2_014`), so that no output overwrites another's. Files of one folder that differ only in
    their suffix keep it (`014_mp4`, `014_mkv`); a file given twice is numbered."""
    given = [Path(os.path.abspath(v)) for v in videos]  # the user's folders, links unresolved
    paths = list(dict.fromkeys(given))  # each file once
    suffixes: dict[tuple[Path, str], set[str]] = {}
    for p in paths:
        suffixes.setdefault((p.parent, p.stem), set()).add(p.suffix)
    base = [
        f"{p.stem}_{p.suffix.lstrip('.')}" if len(suffixes[p.parent, p.stem]) > 1 else p.stem
        for p in paths
    ]
    names = list(base)
    depth = 0
    while clashes := {n for n, count in Counter(names).items() if count > 1}:
        depth += 1
        grown = False
        for i, p in enumerate(paths):
            folders = p.parent.parts[1:]  # without the root
            if names[i] in clashes and depth <= len(folders):
                names[i] = "_".join([*folders[len(folders) - depth :], base[i]])
                grown = True
        if not grown:
            break
    name_of = dict(zip(paths, names, strict=True))
    seen: Counter[Path] = Counter()
    out = []
    for p in given:
        seen[p] += 1
        out.append(name_of[p] if seen[p] == 1 else f"{name_of[p]}_{seen[p]}")
    return out


def _videos(paths: list[Path]) -> list[Path]:
    """Files as given; folders expanded to the video files under them, sorted."""
    from .defaults import video_files

    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += video_files(path)
        else:
            out.append(path)
    return out


ClipsArgument = Annotated[
    list[Path] | None,
    typer.Argument(
        help="Single-speaker clips or folders of them (labels: word timings beside the clip, "
        "else Silero VAD)."
    ),
]
NegativesOption = Annotated[
    list[Path] | None,
    typer.Option(help="Clips whose face never speaks (music, silence, another voice)."),
]
VideosOption = Annotated[
    list[Path] | None, typer.Option(help="Videos with AVA ground truth (use with --gt).")
]
GtOption = Annotated[Path | None, typer.Option(help="AVA-layout ground truth for --videos.")]
ModelsOption = Annotated[
    list[str],
    typer.Option(
        "--model", help="Model to score, NAME or NAME=CHECKPOINT (repeatable).", show_default=False
    ),
]
BaselineOption = Annotated[
    bool,
    typer.Option(
        help="Also score the VAD × lip-movement product baseline (Silero VAD × the first "
        "model's visual-only head)."
    ),
]


def _labelled(clips, negatives, videos, gt, model: str):
    from .data.labelled import tracks_from_ava, tracks_from_clips

    name, _, weights = model.partition("=")
    options = {"model": name, "weights": weights or None}
    tracks = tracks_from_clips(_videos(clips or []), **options)
    tracks += tracks_from_clips(_videos(negatives or []), negative=True, **options)
    if videos:
        if gt is None:
            raise typer.BadParameter("--videos needs --gt (their AVA-layout ground truth)")
        tracks += tracks_from_ava(_videos(videos), gt, **options)
    if not tracks:
        raise typer.BadParameter("no labelled face tracks: give clips, --negatives or --videos")
    return tracks


def _scorers(models: list[str], baseline: bool):
    from .evaluate.baselines import VadLipBaseline
    from .evaluate.tracks import model_scorer
    from .models import load_model

    scorers = [model_scorer(spec) for spec in models]
    if baseline:
        name, _, weights = models[0].partition("=")
        lips = VadLipBaseline(load_model(name, weights=weights or None))
        scorers.append((f"VAD × lip movement ({name})", lips))
    return scorers


@eval_app.command("unsync")
def eval_unsync(
    clips: ClipsArgument = None,
    negatives: NegativesOption = None,
    videos: VideosOption = None,
    gt: GtOption = None,
    models: ModelsOption = [DEFAULT_MODEL],  # noqa: B006
    baseline: BaselineOption = True,
    shares: Annotated[str, typer.Option(help="Unsynchronized shares (%), comma-separated.")] = (
        "0,25,50,75,100"
    ),
    seed: Annotated[int, typer.Option(help="Seed for the twins' audio and the choice.")] = 0,
    report: ReportOption = None,
) -> None:
    """The unsynchronization test: mAP as mismatched / misaligned tracks replace originals."""
    from .evaluate import unsync

    try:
        values = [int(v) for v in shares.split(",")]
    except ValueError:
        raise typer.BadParameter(f"--shares {shares!r}: expected e.g. 0,25,50,75,100") from None
    try:
        test = unsync.UnsyncTest(_labelled(clips, negatives, videos, gt, models[0]), values, seed)
        results = [test.run(scorer, name) for name, scorer in _scorers(models, baseline)]
        _save_report(unsync.report(test, results), report)
    except (SyncASDError, ValueError) as e:
        _fail(str(e))
        raise typer.Exit(EXIT_ERROR) from None
    typer.echo("model\tkind\t" + "\t".join(f"{s}%" for s in values))
    for res in results:
        for kind in unsync.KINDS:
            typer.echo(f"{res.model}\t{kind}\t" + "\t".join(f"{m:.2f}" for m in res.maps[kind]))


@eval_app.command("ablate")
def eval_ablate(
    clips: ClipsArgument = None,
    negatives: NegativesOption = None,
    videos: VideosOption = None,
    gt: GtOption = None,
    models: ModelsOption = [DEFAULT_MODEL],  # noqa: B006
    baseline: BaselineOption = True,
    report: ReportOption = None,
) -> None:
    """mAP with the audio silenced and with the lips masked, beside VAD × lip movement."""
    from .evaluate import ablations

    try:
        tracks = _labelled(clips, negatives, videos, gt, models[0])
        results = [ablations.ablate(s, tracks, name) for name, s in _scorers(models, baseline)]
        _save_report(ablations.report(tracks, results), report)
    except (SyncASDError, ValueError) as e:
        _fail(str(e))
        raise typer.Exit(EXIT_ERROR) from None
    typer.echo("model\t" + "\t".join(ablations.CONDITIONS))
    for res in results:
        typer.echo(f"{res.model}\t" + "\t".join(f"{m:.2f}" for m in res.maps.values()))


@eval_app.command("whospeaks")
def eval_whospeaks(
    clips: Annotated[
        list[Path],
        typer.Argument(
            help="Single-speaker clips or folders of them; only those of the package split's "
            "test identities that speak are used."
        ),
    ],
    models: ModelsOption = [DEFAULT_MODEL],  # noqa: B006
    faces: Annotated[
        list[int], typer.Option("--faces", help="Faces per scene, 2 to 4 (repeatable).")
    ] = [2, 3],  # noqa: B006
    scenes: Annotated[int, typer.Option(help="Scenes per number of faces.")] = 10,
    duration: Annotated[
        float | None, typer.Option(help="Scene length (s); default: its shortest clip.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for the choice of clips and heard face.")] = 0,
    turn: Annotated[
        float | None,
        typer.Option(
            help="Conversations: the voice passes to the next face every TURN seconds, each "
            "face heard in its own voice (default: one voice throughout)."
        ),
    ] = None,
    together: Annotated[
        bool,
        typer.Option(
            "--together",
            help="Crosstalk: every face heard at once in its own voice; reports the share of "
            "their speech and of their silence called speaking (at 0.5) in place of heard first.",
        ),
    ] = False,
    report: ReportOption = None,
) -> None:
    """Who speaks: faces side by side under one face's voice (or taking turns, or all at once)."""
    from .evaluate import whospeaks

    try:
        test = whospeaks.WhoSpeaksTest(
            _videos(clips), faces, scenes, seed, duration, turn=turn, together=together
        )
        results = [test.run(spec) for spec in models]
        _save_report(whospeaks.report(test, results), report)
    except (SyncASDError, ValueError) as e:
        _fail(str(e))
        raise typer.Exit(EXIT_ERROR) from None
    measured = "speech_called%\tsilence_called%" if together else "heard_first%"
    typer.echo(f"model\tfaces\t{measured}\tmAP")
    for res in results:
        for n, share, value, called in whospeaks.table_rows(res, test.faces):
            shares = called if together else (share,)
            typer.echo(
                "\t".join([res.model, str(n), *(f"{100 * x:.2f}" for x in shares), f"{value:.2f}"])
            )


def _int_list(text: str, option: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"{option} {text!r}: expected integers, e.g. 5,7,9") from None


@eval_app.command("sync-accuracy")
def eval_sync_accuracy(
    material: Annotated[
        str,
        typer.Argument(
            help="A corpus split (train, val, test: its speaking tracks, speaking frames scored) "
            "or a folder of videos whose visible face speaks throughout (every frame scored)."
        ),
    ] = "test",
    model: Annotated[
        str,
        typer.Option(
            help="Sync backend: sync-pair (ours, the default), light-syncnet, ic-syncnet, "
            "syncnet-v2 (folders only) or an ASD model (sync-light-asd, …)."
        ),
    ] = DEFAULT_SYNC_MODEL,
    weights: WeightsOption = None,
    max_offset: Annotated[int, typer.Option(help="Search offsets -N..N frames (40 ms each).")] = 15,
    audio_lag_ms: AudioLagOption = None,
    clip_lengths: Annotated[
        str, typer.Option(help="Clip lengths in frames, comma-separated (the paper's Table 1).")
    ] = "5,7,9,11,13,15",
    tolerance: Annotated[
        int, typer.Option(help="An offset within ±this many frames of 0 is correct.")
    ] = 1,
    stride: Annotated[int, typer.Option(help="A clip starts every this many frames.")] = 1,
    limit: Annotated[int | None, typer.Option(help="Only the first N tracks.")] = None,
    corpus: Annotated[
        Path | None,
        typer.Option(help="A built corpus folder; default: that of the sync-light-asd config."),
    ] = None,
    device: DeviceOption = "cpu",
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="Write the result as JSON here.")
    ] = None,
    report: ReportOption = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = False,
) -> None:
    """Sync accuracy (IC-SyncNet §5.1): % of clips whose offset is found within ±1 frame."""
    from .evaluate import syncacc
    from .models import get_spec
    from .offsets import offset_backend

    lengths = _int_list(clip_lengths, "--clip-lengths")
    try:
        # The model first: a wrong name fails before any track is read or detected.
        backend = offset_backend(
            model,
            str(weights) if weights else None,
            max_offset=max_offset,
            device=device,
            audio_lag_ms=audio_lag_ms,
        )
        if Path(material).is_dir():
            from .data.splits import find_videos

            videos = find_videos([material])
            tracks = syncacc.folder_tracks(
                videos, limit, device=device, score=False, crop=get_spec(model).crop
            )
            what = {"material": "folder", "folder": material}
        else:
            if material not in ("train", "val", "test"):
                raise SyncASDError(
                    f"{material}: neither a corpus split (train, val, test) nor a folder"
                )
            if get_spec(model).crop != "asd":
                raise SyncASDError(
                    f"{model} reads colour 224×224 face crops, which a corpus does not keep "
                    "(gray 112×112): pass a folder of videos instead"
                )
            found = syncacc.find_corpus(corpus)
            tracks = syncacc.corpus_tracks(found, material, limit)
            what = {"material": "corpus", "corpus": str(found.root), "split": material}
        result = syncacc.evaluate_sync_accuracy(
            backend, tracks, lengths, tolerance, stride, model=model, progress=progress
        )
        result.extra = {**what, "stride": stride}
    except SyncASDError as e:
        _fail(str(e))
        raise typer.Exit(EXIT_ERROR) from None
    typer.echo(result.table())
    try:
        if out is not None:
            syncacc.save_json(result, out)
        _save_report(syncacc.report(result), report)
    except OSError as e:
        _fail(f"cannot write {out or report}: {e.strerror or e}")
        raise typer.Exit(EXIT_ERROR) from None


# --- sync, scan, scan-merge ---------------------------------------------------------------------

MaxOffsetOption = Annotated[
    int, typer.Option(help="Search offsets -N..N frames (40 ms each; at most 100).")
]
SyncModelOption = Annotated[
    str,
    typer.Option(
        help="Sync backend: sync-pair (ours, the default), a sync-net (light-syncnet, ic-syncnet, "
        "syncnet-v2 with VGG's weights) or an ASD model with separable encoders: "
        "sync-light-asd (ours, sync-aware), light-asd, lr-asd, …"
    ),
]
MinProbOption = Annotated[
    float | None,
    typer.Option(help="Pass: probability at offset >= this (default 0.5, SyncParams)."),
]
MaxOffscreenOption = Annotated[
    float | None,
    typer.Option(help="Pass: off-screen ratio <= this (default 0.2, SyncParams)."),
]
MaxAbsOffsetOption = Annotated[
    int | None,
    typer.Option(help="Pass: |offset| <= this many frames (default 1, SyncParams)."),
]
KeepOption = Annotated[
    Path | None, typer.Option(help="Write the clips that pass the thresholds here, one a line.")
]
RejectOption = Annotated[
    Path | None, typer.Option(help="Write the clips that fail (or failed) here, one a line.")
]


def _sync_params(min_prob: float | None, max_offscreen: float | None, max_abs_offset: int | None):
    from dataclasses import replace

    from .syncmap import DEFAULTS

    chosen = {
        "min_prob_at_offset": min_prob,
        "max_offscreen_ratio": max_offscreen,
        "max_abs_offset": max_abs_offset,
    }
    return replace(DEFAULTS, **{k: v for k, v in chosen.items() if v is not None})


@app.command("sync")
def sync_command(
    videos: Annotated[
        list[Path], typer.Argument(help="Input video file(s), or folders of them (recursively).")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--out",
            help="Write <name>.sync.json (and --plot images) here; <name> is the video's stem, "
            "prefixed by its folders where two videos share a stem.",
        ),
    ] = None,
    json_lines: Annotated[
        bool, typer.Option("--json", help="One JSON object per video per line on stdout.")
    ] = False,
    max_offset: MaxOffsetOption = 15,
    audio_lag_ms: AudioLagOption = None,
    plot: Annotated[
        bool, typer.Option(help="Write OUT/<stem>.track<N>.png, the offset × time map.")
    ] = False,
    fix: Annotated[
        Path | None,
        typer.Option(
            help="Write a copy with the audio moved to remove the main track's offset "
            "(video copied, audio re-encoded as AAC); one input video only."
        ),
    ] = None,
    fix_drift: Annotated[
        bool,
        typer.Option(
            help="With --fix: also remove the main track's drift (the audio resampled so that "
            "its offset stays 0 from start to end), where the track is long enough to measure "
            "it (three stretches of about 10 s)."
        ),
    ] = False,
    model: SyncModelOption = DEFAULT_SYNC_MODEL,
    weights: WeightsOption = None,
    device: DeviceOption = "cpu",
    start: StartOption = 0.0,
    duration: IntervalOption = None,
    detect_every: DetectEveryOption = 2,
    min_track: MinTrackOption = 10,
    allow_silent: AllowSilentOption = False,
    audio_stream: AudioStreamOption = None,
    threads: ThreadsOption = 0,
    progress: ProgressOption = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Log timings.")] = False,
) -> None:
    """Audio-visual offset and sync quality of every face track of each video.

    Per track: offset in frames and ms (+ = the voice comes later than the lips), confidence,
    probability at offset, off-screen ratio and the verdict (IC-SyncNet App. E).
    """
    import json
    import warnings

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    from .syncmap import plot_offset_map
    from .syncrun import (
        SyncAnalyzer,
        check_output,
        drift_fix,
        drift_words,
        fix_offset,
        verdict,
    )

    videos = _videos(videos)
    try:
        if fix is not None:
            if len(videos) != 1:
                raise SyncASDError("--fix takes exactly one input video")
            check_output(videos[0], fix)
        if fix_drift and fix is None:
            raise SyncASDError("--fix-drift goes with --fix OUT")
        if plot and out is None:
            raise SyncASDError("--plot needs -o OUTDIR for the images")
        analyzer = SyncAnalyzer(
            max_offset=max_offset,
            audio_lag_ms=audio_lag_ms,
            model=model,
            weights=str(weights) if weights else None,
            device=device,
            start=start,
            duration=duration,
            detect_every=detect_every,
            min_track=min_track,
            allow_silent=allow_silent,
            audio_stream=audio_stream,
            threads=threads,
            progress=progress,
        )
    except SyncASDError as e:
        _fail(str(e))
        raise typer.Exit(EXIT_ERROR) from None

    names = output_names(videos)
    failed = 0
    for video, name in zip(videos, names, strict=True):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")  # no face: said below, once
                result = analyzer(video)
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                from .atomic import atomic_write

                with atomic_write(out / f"{name}.sync.json") as f:
                    json.dump(result.to_dict(), f, indent=1)
                for track, probs in zip(result.tracks, result.matrices, strict=True):
                    if plot:
                        plot_offset_map(
                            probs,
                            out / f"{name}.track{track.track_id}.png",
                            f"{video.name} track {track.track_id}: offset "
                            f"{track.offset_frames:+d} frames ({track.offset_ms:+.0f} ms)",
                            offset=track.offset_frames,
                            speaking=track.speaking,
                        )
        except SyncASDError as e:
            _fail(str(e))
            if json_lines:
                typer.echo(json.dumps({"video": str(video), "error": str(e)}))
            failed += 1
            continue
        except OSError as e:
            _fail(f"{video}: cannot write outputs to {out}: {e.strerror or e}")
            if json_lines:
                typer.echo(json.dumps({"video": str(video), "error": str(e)}))
            failed += 1
            continue
        if not result.tracks:
            for w in caught:
                typer.echo(f"syncasd: warning: {w.message}", err=True)
        if json_lines:
            typer.echo(result.to_json_line())
        else:
            heard = heard_track(result.audio_stream, result.audio_streams)
            heard = f" ({heard})" if heard else ""
            typer.echo(f"{video}: {len(result.tracks)} face track(s){heard}")
            for t, (first, last) in zip(result.tracks, result.spans, strict=True):
                typer.echo(
                    f"  track {t.track_id} (frames {first}-{last}): offset "
                    f"{t.offset_frames:+d} frames ({t.offset_ms:+.0f} ms), confidence "
                    f"{t.confidence:.3f}, prob at offset {t.prob_at_offset:.3f}, off-screen "
                    f"{t.offscreen_ratio:.3f}: {verdict(t, analyzer.params)}"
                )
                if note := drift_words(t):
                    typer.echo(f"    {note}")
        if fix is not None:
            main = result.main
            try:
                if main is None:
                    raise SyncASDError(
                        f"{video}: no face track, so no offset to remove; {fix} not written"
                    )
                line = drift_fix(result, main) if fix_drift else None
                fix_offset(
                    video,
                    fix,
                    *(line or (main.offset_frames, 0.0)),
                    audio_stream=result.audio_stream,
                )
            except SyncASDError as e:
                _fail(str(e))
                failed += 1
                continue
            if main.prob_at_offset < analyzer.params.min_prob_at_offset:
                typer.echo(
                    f"syncasd: warning: {video}: the offset is uncertain (probability at offset "
                    f"{main.prob_at_offset:.2f})",
                    err=True,
                )
            if line is None:
                if fix_drift:
                    typer.echo(
                        f"syncasd: warning: {video}: track {main.track_id} is too short to "
                        "measure a drift; only its offset is removed",
                        err=True,
                    )
                typer.echo(
                    f"{fix}: audio moved by {-main.offset_frames:+d} frames "
                    f"({-main.offset_ms:+.0f} ms) to remove track {main.track_id}'s offset",
                    err=True,
                )
            else:
                side = "earlier" if line[1] > 0 else "later"
                typer.echo(
                    f"{fix}: audio moved by {-line[0]:+.2f} frames at the start and made "
                    f"{abs(line[1]):.0f} ms per minute {side} to remove track {main.track_id}'s "
                    "offset and drift",
                    err=True,
                )
    if failed:
        raise typer.Exit(EXIT_ERROR)


@app.command("scan")
def scan_command(
    source: Annotated[
        Path,
        typer.Argument(help="A folder of clips (searched recursively), a list file, or one clip."),
    ],
    table: Annotated[
        Path, typer.Option("-o", "--out", help="The CSV table; an existing one is resumed.")
    ],
    workers: Annotated[int, typer.Option(help="Processes, each loading the models once.")] = 1,
    keep: KeepOption = None,
    reject: RejectOption = None,
    shard: Annotated[
        str, typer.Option(help="I/N: only every N-th clip of the sorted list, from the I-th.")
    ] = "0/1",
    max_offset: MaxOffsetOption = 15,
    audio_lag_ms: AudioLagOption = None,
    min_prob: MinProbOption = None,
    max_offscreen: MaxOffscreenOption = None,
    max_abs_offset: MaxAbsOffsetOption = None,
    model: Annotated[
        str, typer.Option(help="Sync backend (see sync --help); default: the fastest of ours.")
    ] = DEFAULT_SCAN_MODEL,
    weights: WeightsOption = None,
    device: DeviceOption = "cpu",
    duration: Annotated[
        float | None, typer.Option(help="Analyse only the first N seconds of each clip.")
    ] = None,
    detect_every: DetectEveryOption = 2,
    threads: Annotated[
        int,
        typer.Option(
            help="CPU threads per worker (0: CPUs / workers, or the default; with --ray at a "
            "cluster: 1). With --ray, the CPUs each actor reserves."
        ),
    ] = 0,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Analyse on Ray: a cluster's address (host:port, auto, ray://...) or 'local' "
            "to start a Ray instance on this machine; --workers sets the number of Ray actors, "
            "each loading the models once. Needs Ray (syncasd's ray extra).",
        ),
    ] = None,
) -> None:
    """Rate many clips into one resumable CSV table (one row per clip, its main track), with
    histograms beside it (<table>_hist.png) and keep / reject lists."""
    from . import scan as sc

    params = _sync_params(min_prob, max_offscreen, max_abs_offset)
    try:
        index, count = sc.parse_shard(shard)
        clips = sc.shard(sc.list_clips(source), index, count)
        summary = sc.scan(
            clips,
            table,
            workers=workers,
            report=lambda line: typer.echo(line, err=True),
            ray_address=ray,
            max_offset=max_offset,
            audio_lag_ms=audio_lag_ms,
            params=params,
            model=model,
            weights=str(weights) if weights else None,
            device=device,
            duration=duration,
            detect_every=detect_every,
            threads=threads,
        )
        _scan_outputs(table, keep, reject, params)
    except SyncASDError as e:
        _fail(str(e))
        raise typer.Exit(EXIT_ERROR) from None
    except OSError as e:
        _fail(f"cannot write the scan outputs: {e.strerror or e} ({e.filename})")
        raise typer.Exit(EXIT_ERROR) from None
    typer.echo(
        f"scan: {table}: {summary.analysed} clip(s) analysed now ({summary.failed} failed), "
        f"{summary.skipped} already there",
        err=True,
    )


def _scan_outputs(table: Path, keep: Path | None, reject: Path | None, params) -> None:
    from . import scan as sc

    typer.echo(f"scan: histograms → {sc.plot_histograms(table)}", err=True)
    if keep is not None or reject is not None:
        kept, rejected = sc.write_lists(table, keep, reject, params)
        typer.echo(f"scan: {kept} clip(s) pass, {rejected} fail the thresholds", err=True)


@app.command("scan-merge")
def scan_merge(
    parts: Annotated[list[Path], typer.Argument(help="Tables of `syncasd scan` (shards).")],
    table: Annotated[Path, typer.Option("-o", "--out", help="The joined table.")],
    keep: KeepOption = None,
    reject: RejectOption = None,
    min_prob: MinProbOption = None,
    max_offscreen: MaxOffscreenOption = None,
    max_abs_offset: MaxAbsOffsetOption = None,
) -> None:
    """Join scan tables (e.g. the shards of a Slurm array) into one, each clip once, with its
    histograms and keep / reject lists."""
    from . import scan as sc

    params = _sync_params(min_prob, max_offscreen, max_abs_offset)
    try:
        rows = sc.merge_tables(parts, table)
        _scan_outputs(table, keep, reject, params)
    except SyncASDError as e:
        _fail(str(e))
        raise typer.Exit(EXIT_ERROR) from None
    except OSError as e:
        _fail(f"cannot write the merged table: {e.strerror or e} ({e.filename})")
        raise typer.Exit(EXIT_ERROR) from None
    typer.echo(f"scan-merge: {table}: {rows} clip(s) from {len(parts)} table(s)", err=True)


def main() -> None:
    app(prog_name="syncasd")


if __name__ == "__main__":
    sys.exit(main())
