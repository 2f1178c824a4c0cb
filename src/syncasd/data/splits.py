"""Identity splits: which people are trained on, validated on and tested on.

An identity is the person in a clip as far as its folder tells (`vasp/ID3`, `voxceleb2/id00100`,
`styletalk/obama`), else the clip itself (`pcavs/00015`), else the whole folder (`lrw_ar`,
`grid`, `lrs2`). The split of `../shared/data/clips` is the file `splits/shared.json` in this
package; every published number is on its `test` identities.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..defaults import video_files

SPLITS = ("train", "val", "test")
SHARED_SPLIT = Path(__file__).with_name("splits") / "shared.json"
# Folders whose clips carry no identity, one person or anchor per folder or unknown.
_WHOLE_FOLDER = {"lrw_ar", "grid", "lrs2"}


def identity_of(clip: str | Path) -> str:
    """The identity of a clip of `../shared/data/clips/<folder>/...` (module docstring)."""
    clip = Path(clip)
    folder = clip.parent.name
    if folder.startswith("ID") and clip.parent.parent.name == "vasp":
        return f"vasp/{folder}"
    if folder in _WHOLE_FOLDER:
        return folder
    if folder == "voxceleb2":
        return f"voxceleb2/{clip.stem.split('_')[0]}"
    if folder == "styletalk":  # Obama_clip1, andrew_clip_1, feifeili_clip2_short, KristiNoem
        return f"styletalk/{re.split(r'_', clip.stem)[0].lower()}"
    return f"{folder}/{clip.stem}"


@dataclass(frozen=True)
class Split:
    """Identities per split, plus the clips whose face never speaks (negatives) or is unusable."""

    identities: dict[str, frozenset[str]]
    negative: frozenset[str]
    exclude: frozenset[str]

    @classmethod
    def load(cls, path: str | Path = SHARED_SPLIT) -> Split:
        data = json.loads(Path(path).read_text())
        identities = {name: frozenset(data["splits"].get(name, ())) for name in SPLITS}
        seen: dict[str, str] = {}
        for name, ids in identities.items():
            for identity in ids:
                if identity in seen:
                    raise ValueError(f"{path}: {identity} is in both {seen[identity]} and {name}")
                seen[identity] = name
        return cls(
            identities, frozenset(data.get("negative", ())), frozenset(data.get("exclude", ()))
        )

    def split_of(self, clip: str | Path) -> str | None:
        """ "train", "val", "test", or None for a clip whose identity is in no split."""
        identity = identity_of(clip)
        if identity in self.exclude:
            return None
        for name, ids in self.identities.items():
            if identity in ids:
                return name
        return None

    def is_negative(self, clip: str | Path) -> bool:
        return identity_of(clip) in self.negative

    def clips(self, root: str | Path, split: str) -> list[Path]:
        """Every video under `root` (recursively) in `split`, sorted."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; one of {', '.join(SPLITS)}")
        return [c for c in find_videos([root]) if self.split_of(c) == split]


def find_videos(roots: Iterable[str | Path]) -> list[Path]:
    """Video files under each root (a file is taken as is), sorted."""
    out: list[Path] = []
    for root in map(Path, roots):
        if root.is_file():
            out.append(root)
        else:
            out += video_files(root)
    return sorted(out)
