"""Outputs appear complete or not at all: write to a hidden file beside the target, then rename."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` (same suffix, so format guessing works) that is renamed
    over `path` if the block succeeds and deleted if it fails."""
    path = Path(path)
    # Not mkstemp: its 0600 mode would survive the rename; a plain create honours the umask.
    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.part{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """`open(path, mode)` whose file only appears at `path` once the block has succeeded."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f
