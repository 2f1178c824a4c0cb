"""Many clips: `syncasd scan` rates every clip of a folder or list into one CSV table.

Made for curating talking-head datasets (IC-SyncNet App. E): one row per clip with the main
(longest) track's offset, confidence, probability at offset, off-screen ratio and verdict,
then histograms of those (the paper's Fig. 4) and keep / reject lists at chosen thresholds.

- Resumable: clips already in the table are skipped; each row is appended and flushed as soon
  as its clip is done, so a killed scan loses at most the clips in progress, and a torn last
  line is cut off when the scan resumes, so the table always parses.
- A clip that fails (unreadable, no audio, silent, a crash in a worker) gets a row with its
  error; the scan goes on.
- `workers` processes (spawn), each loading the models once; `shard` (I, N) takes every N-th
  clip of the sorted list from the I-th, so N independent jobs (a Slurm array) split a corpus;
  `merge_tables` joins their tables.
- `ray_address`: the clips go to `workers` Ray actors instead (a cluster, or "local"), each
  loading the models once; the rows still come back here and are written as above.
- Memory is flat in the number of clips: results are never held beyond their row; histograms
  and lists are computed by streaming over the table.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import socket
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path, atomic_write
from .defaults import DEFAULT_SCAN_MODEL, VIDEO_SUFFIXES, video_files
from .errors import InputError, SyncASDError
from .syncmap import DEFAULTS, SyncParams

COLUMNS = (
    "path",
    "tracks",
    "offset_frames",
    "offset_ms",
    "confidence",
    "prob_at_offset",
    "offscreen_ratio",
    "in_sync",
    "error",
)
PROB_BINS = 20  # histogram bins over [0, 1] for the probability and the off-screen ratio
DIED = "the worker process died while analysing this clip (crashed, or killed: out of memory?)"

Row = dict[str, str]
Report = Callable[[str], None]


# ---------------------------------------------------------------------------------------------
# Which clips


def list_clips(source: str | Path) -> list[str]:
    """The clips to scan, sorted: the video files under a folder (recursively), a single video
    file, or the paths listed in a text file (one per line, as written: relative paths are
    relative to the current folder; blank lines and lines starting with # are skipped)."""
    p = Path(source)
    if p.is_dir():
        clips = [str(f) for f in video_files(p)]
    elif p.suffix.lower() in VIDEO_SUFFIXES:
        clips = [str(p)]
    elif p.is_file():
        try:
            lines = p.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"{p}: cannot read the list of clips ({e})") from None
        clips = [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]
    else:
        raise InputError(f"{p}: no such folder or list file")
    if not clips:
        kinds = ", ".join(sorted(VIDEO_SUFFIXES))
        raise InputError(f"{p}: no clips in it (video files: {kinds}; lists: one path a line)")
    return sorted(set(clips))


def parse_shard(text: str) -> tuple[int, int]:
    """Parse "I/N" into (I, N), 0 <= I < N."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise InputError(f"--shard {text!r}: expected I/N, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise InputError(f"--shard {text!r}: need 0 <= I < N")
    return i, n


def shard(clips: list[str], index: int, count: int) -> list[str]:
    """Every `count`-th clip of the sorted list, from the `index`-th: shards partition it."""
    return sorted(clips)[index::count]


# ---------------------------------------------------------------------------------------------
# The table


def _check_header(path: Path, header: list[str] | None) -> None:
    if header != list(COLUMNS):
        raise InputError(
            f"{path}: not a scan table (its header is {header}, expected {','.join(COLUMNS)})"
        )


def read_table(path: str | Path) -> Iterator[Row]:
    """The rows of a scan table, one at a time."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            _check_header(path, next(reader, None))
            for values in reader:
                if len(values) == len(COLUMNS):
                    yield dict(zip(COLUMNS, values, strict=True))
    except OSError as e:
        raise InputError(f"{path}: cannot read the table ({e.strerror or e})") from None


def _line(row: Row) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([row.get(c, "") for c in COLUMNS])
    return buf.getvalue()


class TableWriter:
    """Appends rows to a scan table, creating it (header only, atomically) if needed.

    `done` holds the paths already in the table. A last line without its newline (a scan
    killed while writing) is cut off, so the file stays parseable.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.done: set[str] = set()
        if not self.path.exists() or self.path.stat().st_size == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(self.path, newline="") as f:
                f.write(_line(dict(zip(COLUMNS, COLUMNS, strict=True))))
        else:
            self._repair()
            self.done = {row["path"] for row in read_table(self.path)}
        self._file = open(self.path, "a", newline="")

    def _repair(self) -> None:
        with open(self.path, "rb+") as f:
            data = f.read()
            header = data.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
            _check_header(self.path, header.split(","))  # never cut a file that is not ours
            if not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)

    def write(self, row: Row) -> None:
        # One write of the whole line, flushed: a kill cannot leave half a row behind.
        self._file.write(_line(row))
        self._file.flush()
        self.done.add(row["path"])

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# One clip


def analyse(analyzer: Any, path: str) -> Row:
    """The table row of one clip; never raises for a bad clip (the error goes in the row)."""
    from .syncrun import main_track

    row: Row = dict.fromkeys(COLUMNS, "")
    row["path"] = path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no face found": the row says tracks = 0
            result = analyzer(path)
    except SyncASDError as e:
        row["error"] = _one_line(str(e))
        return row
    except Exception as e:  # noqa: BLE001 (a bug on one clip must not stop a long scan)
        row["error"] = _one_line(f"{type(e).__name__}: {e}")
        return row
    row["tracks"] = str(len(result.tracks))
    main = main_track(result)
    if main is not None:
        d = main.to_dict()
        row.update({k: str(d[k]) for k in COLUMNS[2:7]})
        row["in_sync"] = "true" if d["in_sync"] else "false"
    return row


def _one_line(text: str) -> str:
    return " ".join(text.split())


_WORKER: Any = None


def _init_worker(options: dict[str, Any]) -> None:
    global _WORKER
    from .syncrun import SyncAnalyzer

    _WORKER = SyncAnalyzer(**options)


def _work(path: str) -> Row:
    return analyse(_WORKER, path)


# ---------------------------------------------------------------------------------------------
# Many clips


@dataclass
class ScanSummary:
    clips: int  # in this scan (after sharding)
    skipped: int  # already in the table
    analysed: int  # rows written now
    failed: int  # of those, rows with an error


def scan(
    clips: Iterable[str],
    table: str | Path,
    *,
    workers: int = 1,
    report: Report | None = None,
    ray_address: str | None = None,
    **options: Any,
) -> ScanSummary:
    """Analyse every clip not yet in `table` and append its row; returns the counts.

    `options` are `SyncAnalyzer`'s (model, weights, max_offset, params, duration, threads...);
    the model defaults to `DEFAULT_SCAN_MODEL` (light-syncnet, the fastest of ours).
    With workers > 1, each of `workers` spawned processes builds its own analyzer, with
    `threads` (default: CPU count / workers) torch threads.

    `ray_address` (`ray.init`'s address, or "local" to start a Ray instance here): the clips
    are analysed by `workers` Ray actors, each holding one analyzer and reserving `threads`
    CPUs (default: CPU count / workers with "local", else 1); the table is written here as
    without Ray. The clips (and weights) must be readable at the same paths on every node.
    Ray is shut down at the end only if this call started it.
    """
    from .syncrun import SyncAnalyzer

    options = {"model": DEFAULT_SCAN_MODEL, **options}
    if workers < 1:
        raise InputError("--workers must be at least 1")
    if ray_address is not None and not ray_address.strip():
        raise InputError("--ray needs an address: host:port, auto, ray://host:port or local")
    # Before the table is touched: a missing extra is a setup error, whatever is left to do.
    ray = _import_ray() if ray_address is not None else None
    say = report or (lambda _: None)
    clips = list(clips)
    with TableWriter(table) as writer:
        todo = [c for c in clips if c not in writer.done]
        summary = ScanSummary(len(clips), len(clips) - len(todo), 0, 0)
        say(
            f"scan: {summary.clips} clips, {summary.skipped} already in {table}, "
            f"{len(todo)} to analyse"
        )
        if not todo:
            return summary
        # Built here even with workers: bad options (weights, model) fail once, before any
        # row is written, instead of in every worker.
        analyzer = SyncAnalyzer(**options)

        def write(row: Row) -> None:
            writer.write(row)
            summary.analysed += 1
            summary.failed += bool(row["error"])
            say(f"scan: [{summary.analysed}/{len(todo)}] {_describe(row)}")

        if ray is not None:
            del analyzer
            _ray_scan(ray, ray_address, todo, options, workers, write)
        elif workers == 1:
            for path in todo:
                write(analyse(analyzer, path))
        else:
            del analyzer
            if not options.get("threads"):
                options = {**options, "threads": max(1, (os.cpu_count() or 1) // workers)}
            _pool(todo, options, workers, write)
    return summary


def _describe(row: Row) -> str:
    if row["error"]:
        return f"{row['path']}: error: {row['error']}"
    if row["tracks"] == "0":
        return f"{row['path']}: no face"
    verdict = "in sync" if row["in_sync"] == "true" else "not in sync"
    return (
        f"{row['path']}: offset {int(row['offset_frames']):+d} ({row['offset_ms']} ms), "
        f"prob {row['prob_at_offset']}, off-screen {row['offscreen_ratio']}: {verdict}"
    )


def _executor(workers: int, options: dict[str, Any]) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        workers,
        mp_context=get_context("spawn"),
        initializer=_init_worker,
        initargs=(options,),
    )


def _pool(todo: list[str], options: dict[str, Any], workers: int, write: Callable) -> None:
    """Run `todo` on a pool, at most 2 clips per worker queued. If a worker dies, the clips in
    flight are rerun one by one in a fresh process each, so only the culprit gets an error."""
    pending = iter(todo)
    while True:
        ex = _executor(workers, options)
        flying: dict[Any, str] = {}
        broken: list[str] = []
        finished = False
        try:
            while True:
                while len(flying) < 2 * workers and (path := next(pending, None)) is not None:
                    flying[ex.submit(_work, path)] = path
                if not flying:
                    finished = True
                    break
                done, _ = wait(flying, return_when=FIRST_COMPLETED)
                for future in done:
                    path = flying.pop(future)
                    try:
                        write(future.result())
                    except BrokenProcessPool:
                        broken.append(path)
                if broken:
                    broken += flying.values()
                    break
        except BaseException:  # Ctrl-C or a failed write: do not wait for the clips in flight
            ex.shutdown(wait=False, cancel_futures=True)
            raise
        ex.shutdown(wait=True)
        if finished:
            return
        for path in broken:
            write(_alone(path, options))


def _alone(path: str, options: dict[str, Any]) -> Row:
    ex = _executor(1, options)
    try:
        return ex.submit(_work, path).result()
    except BrokenProcessPool:
        return {**dict.fromkeys(COLUMNS, ""), "path": path, "error": DIED}
    finally:
        ex.shutdown(wait=True)


# ---------------------------------------------------------------------------------------------
# Ray: the same rows from actors on a cluster (optional extra)

RAY_IN_FLIGHT = 2  # clips queued per actor: it never waits for work, the driver holds few refs


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError('--ray needs Ray, an optional extra: pip install "syncasd[ray]"') from None
    return ray


class _RayWorker:
    """One Ray actor: an analyzer built once, then one clip per call."""

    def __init__(self, options: dict[str, Any], cwd: str) -> None:
        from .syncrun import SyncAnalyzer

        # Nodes share the filesystem; running in the driver's folder (where it exists) makes
        # relative clip and weight paths, and so the rows' error messages, the same as there.
        if os.path.isdir(cwd):
            os.chdir(cwd)
        self.analyzer: Any = None
        self.error = ""
        try:
            self.analyzer = SyncAnalyzer(**options)
        except Exception as e:  # noqa: BLE001 (reported by ready(), as a message, not a dead actor)
            self.error = _one_line(
                str(e) if isinstance(e, SyncASDError) else f"{type(e).__name__}: {e}"
            )

    def ready(self) -> str:
        return self.error

    def analyse(self, path: str) -> Row:
        return analyse(self.analyzer, path)


def _ray_connect(ray: Any, address: str, cpus: int) -> bool:
    """Connect to (or start) Ray; returns whether this call started it."""
    if ray.is_initialized():  # the caller's own session: use it, leave it running
        return False
    if address == "local":  # address="local" starts one even where RAY_ADDRESS is set
        kwargs: dict[str, Any] = dict(num_cpus=cpus, include_dashboard=False)
    else:
        _probe(address)
        kwargs = {}
    try:
        ray.init(address=address, logging_level=logging.WARNING, **kwargs)
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as e:
        raise InputError(f"--ray {address}: cannot connect to Ray ({_last_line(e)})") from None
    return True


def _probe(address: str) -> None:
    """Fail fast on a host:port where nothing listens: `ray.init` would retry for minutes."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return  # "auto", ray://... : Ray checks those quickly itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as e:
        raise InputError(
            f"--ray {address}: no Ray cluster answers there ({e.strerror or e}); start one "
            "with `ray start --head` or use --ray local"
        ) from None


def _last_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _ray_scan(
    ray: Any, address: str, todo: list[str], options: dict[str, Any], workers: int, write: Callable
) -> None:
    local = address == "local" and not ray.is_initialized()
    threads = options.get("threads") or (max(1, (os.cpu_count() or 1) // workers) if local else 1)
    options = {**options, "threads": threads}
    gpus = 0.0
    if str(options.get("device", "cpu")).startswith("cuda"):
        # Ray shows an actor only the GPU it reserved, as device 0. On a cluster each actor
        # reserves a whole GPU; here the actors share this machine's GPUs evenly.
        options["device"], gpus = "cuda", 1.0
        if local:
            import torch

            gpus = 1 / math.ceil(workers / max(1, torch.cuda.device_count()))
    started = _ray_connect(ray, address, workers * threads)
    try:
        remote = ray.remote(_RayWorker).options(num_cpus=threads, num_gpus=gpus)
        _ray_pool(ray, remote, todo, options, workers, write)
    finally:
        if started:
            ray.shutdown()


def _ray_pool(
    ray: Any, remote: Any, todo: list[str], options: dict[str, Any], workers: int, write: Callable
) -> None:
    """Run `todo` on `workers` actors, RAY_IN_FLIGHT clips queued on each. If an actor dies,
    a fresh one takes its place and first reruns the clips it held one by one (replaced again
    each time one kills it), so only the culprit gets an error."""
    cwd = os.getcwd()
    actors: list[Any] = []  # every live actor, killed at the end whatever happens
    errors = ray.exceptions

    def new() -> Any:
        actors.append(remote.remote(options, cwd))
        return actors[-1]

    def ready(actor: Any) -> Any:
        try:
            error = ray.get(actor.ready.remote())
        except errors.RayError as e:  # it could not even run our code: syncasd not installed?
            error = f"{_last_line(e)} (is syncasd installed on every Ray node?)"
        if error:
            raise InputError(f"a Ray worker could not load the models: {error}")
        return actor

    def kill(actor: Any) -> None:
        actors.remove(actor)
        ray.kill(actor)

    def outcome(ref: Any, path: str) -> Row | None:
        """The clip's row; None if its actor died (crashed, killed for memory, node lost)."""
        try:
            return ray.get(ref)
        except errors.RayTaskError as e:  # escaped `analyse` (not an Exception): say what
            cause = e.cause or e
            error = _one_line(f"{type(cause).__name__}: {_last_line(cause)}")
            return {**dict.fromkeys(COLUMNS, ""), "path": path, "error": error}
        except errors.RayError:
            return None

    try:
        pool = [ready(actor) for actor in [new() for _ in range(workers)]]  # load in parallel
        pending = iter(todo)
        flying: dict[Any, tuple[str, int]] = {}  # ref -> (clip, actor index)
        load = [0] * workers
        while True:
            for i in range(workers):
                while load[i] < RAY_IN_FLIGHT and (path := next(pending, None)) is not None:
                    flying[pool[i].analyse.remote(path)] = (path, i)
                    load[i] += 1
            if not flying:
                return
            (ref,), _ = ray.wait(list(flying), num_returns=1)
            path, i = flying.pop(ref)
            load[i] -= 1
            if (row := outcome(ref, path)) is not None:
                write(row)
                continue
            # Actor i died: its other clips fail too, unless they were done before it died.
            suspects = [path]
            for other in [r for r, (_, j) in flying.items() if j == i]:
                other_path, _ = flying.pop(other)
                if (row := outcome(other, other_path)) is not None:
                    write(row)
                else:
                    suspects.append(other_path)
            # The replacement takes the dead one's CPUs: a separate actor for the reruns could
            # wait forever for CPUs that the pool holds.
            kill(pool[i])
            pool[i], load[i] = ready(new()), 0
            for suspect in suspects:
                if (row := outcome(pool[i].analyse.remote(suspect), suspect)) is None:
                    row = {**dict.fromkeys(COLUMNS, ""), "path": suspect, "error": DIED}
                    kill(pool[i])
                    pool[i] = ready(new())
                write(row)
    finally:  # done, Ctrl-C or a failed write: free the actors (on a shared cluster too)
        for actor in actors:
            ray.kill(actor)


# ---------------------------------------------------------------------------------------------
# What to do with a table


def passes(row: Row, params: SyncParams = DEFAULTS) -> bool:
    """Whether a clip's main track passes the thresholds: |offset| <= max_abs_offset,
    prob_at_offset >= min_prob_at_offset, offscreen_ratio <= max_offscreen_ratio. Clips with
    an error or without a face fail."""
    if row["error"] or row["tracks"] in ("", "0"):
        return False
    return (
        abs(int(row["offset_frames"])) <= params.max_abs_offset
        and float(row["prob_at_offset"]) >= params.min_prob_at_offset
        and float(row["offscreen_ratio"]) <= params.max_offscreen_ratio
    )


def write_lists(
    table: str | Path,
    keep: str | Path | None = None,
    reject: str | Path | None = None,
    params: SyncParams = DEFAULTS,
) -> tuple[int, int]:
    """Write the paths of the table's clips that pass (`keep`) and fail (`reject`) the
    thresholds, one per line, each file atomically; returns (kept, rejected)."""
    counts = [0, 0]
    with _maybe_atomic(keep) as k, _maybe_atomic(reject) as r:
        for row in read_table(table):
            ok = passes(row, params)
            counts[not ok] += 1
            out = k if ok else r
            if out is not None:
                out.write(row["path"] + "\n")
    return counts[0], counts[1]


class _maybe_atomic:
    def __init__(self, path: str | Path | None) -> None:
        self.cm = atomic_write(path) if path is not None else None

    def __enter__(self):
        return self.cm.__enter__() if self.cm is not None else None

    def __exit__(self, *exc):
        return self.cm.__exit__(*exc) if self.cm is not None else False


def merge_tables(parts: Iterable[str | Path], out: str | Path) -> int:
    """Join scan tables (shards) into `out` (atomically): each clip once, a row without error
    preferred to one with; rows in the order of the parts. Returns the number of rows."""
    parts = [Path(p) for p in parts]
    good = {row["path"] for p in parts for row in read_table(p) if not row["error"]}
    seen: set[str] = set()
    with atomic_write(out, newline="") as f:
        f.write(_line(dict(zip(COLUMNS, COLUMNS, strict=True))))
        for p in parts:
            for row in read_table(p):
                path = row["path"]
                if path in seen or (row["error"] and path in good):
                    continue
                seen.add(path)
                f.write(_line(row))
    return len(seen)


def histogram_path(table: str | Path) -> Path:
    """Where the histograms of a table go: beside it, `<stem>_hist.png`."""
    table = Path(table)
    return table.with_name(f"{table.stem}_hist.png")


def plot_histograms(table: str | Path, path: str | Path | None = None) -> Path:
    """Histograms of the main tracks' offset, probability at offset and off-screen ratio (as
    IC-SyncNet's Fig. 4), counted while streaming over the table; written atomically (PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    path = Path(path) if path is not None else histogram_path(table)
    offsets: Counter[int] = Counter()
    edges = np.linspace(0.0, 1.0, PROB_BINS + 1)
    probs = np.zeros(PROB_BINS, np.int64)
    ratios = np.zeros(PROB_BINS, np.int64)
    n = 0
    for row in read_table(table):
        if row["error"] or row["tracks"] in ("", "0"):
            continue
        n += 1
        offsets[int(row["offset_frames"])] += 1
        for counts, key in ((probs, "prob_at_offset"), (ratios, "offscreen_ratio")):
            counts[min(int(float(row[key]) * PROB_BINS), PROB_BINS - 1)] += 1
    fig = Figure(figsize=(12.0, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    keys = sorted(offsets) or [0]
    axes[0].bar(keys, [offsets[k] for k in keys], width=0.9, color="tab:blue")
    axes[0].set_xlim(min(keys[0], -1) - 0.5, max(keys[-1], 1) + 0.5)
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_xlabel("offset (frames, + = audio later)")
    axes[1].bar(edges[:-1], probs, width=1 / PROB_BINS, align="edge", color="tab:green")
    axes[1].set_xlabel("probability at offset")
    axes[2].bar(edges[:-1], ratios, width=1 / PROB_BINS, align="edge", color="tab:red")
    axes[2].set_xlabel("off-screen ratio")
    for ax in axes:
        ax.set_ylabel("clips")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[1:]:
        ax.set_xlim(0.0, 1.0)
    fig.suptitle(f"{Path(table).name}: {n} clips with a face")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    return path


__all__ = [
    "COLUMNS",
    "ScanSummary",
    "TableWriter",
    "analyse",
    "histogram_path",
    "list_clips",
    "merge_tables",
    "parse_shard",
    "passes",
    "plot_histograms",
    "read_table",
    "scan",
    "shard",
    "write_lists",
]
