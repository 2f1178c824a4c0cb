"""Mean speaking probability per source and label, with the real audio and with it silenced.

Shows what docs/results.md says of the TalkSet checkpoints (they call nearly every moving face
speaking, with or without sound), on the evaluation suite's material.

    python bench/probability_by_source.py [MODEL ...]   # default: light-asd.ava, .talkset
    python bench/probability_by_source.py sync-light-asd light-asd.ava
"""

from __future__ import annotations

import sys

import numpy as np
from eval_suite import material, model_spec

from syncasd.evaluate.ablations import silence
from syncasd.evaluate.report import markdown_table
from syncasd.evaluate.tracks import model_scorer


def source(video_id: str, speaks: bool) -> str:
    folder = video_id.split("/")[0]
    if folder.startswith("ID"):
        return "VASP"
    return folder if speaks else f"{folder} (never speaks)"


def main() -> int:
    names = sys.argv[1:] or ["light-asd.ava", "light-asd.talkset"]
    tracks = material(3)
    rows = []
    for name in names:
        _, scorer = model_scorer(model_spec(name))
        sums: dict[str, list[list[np.ndarray]]] = {}
        for t in tracks:
            real, silent = scorer(t.crops, t.audio), scorer(t.crops, silence(t).audio)
            parts = sums.setdefault(source(t.video_id, t.labels.any()), [[], [], [], []])
            for i, (p, mask) in enumerate(
                [(real, t.labels), (real, ~t.labels), (silent, t.labels), (silent, ~t.labels)]
            ):
                parts[i].append(p[mask])
        for src, parts in sums.items():
            means = [
                float(np.concatenate(x).mean()) if sum(map(len, x)) else float("nan") for x in parts
            ]
            rows.append([name, src, *means])
    headers = [
        "model",
        "source",
        "speaking",
        "not speaking",
        "speaking, silenced",
        "not speaking, silenced",
    ]
    print(markdown_table(headers, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
