"""Markdown reports with plots, one folder per evaluation: `report.md` beside its PNG figures.

Every file is written atomically, figures first, so a report never points at a missing plot.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..atomic import atomic_path, atomic_write


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.2f}"  # NaN: undefined
    return str(value).replace("|", "\\|")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table; floats get two decimals."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


class Report:
    """Build up a report, then `save(folder)`.

    >>> r = Report("Unsynchronization test")
    >>> r.text("mAP as the share of unsynchronized tracks grows.")
    >>> r.table(["share", "mAP"], [[0, 91.2], [50, 60.3]])
    >>> fig, ax = r.figure("map_vs_share", "mAP against the unsynchronized share")
    >>> ax.plot([0, 50], [91.2, 60.3])
    >>> r.save("reports/unsync")
    """

    def __init__(self, title: str) -> None:
        self.title = title
        self._blocks: list[str] = []
        self._figures: dict[str, Any] = {}

    def text(self, markdown: str) -> None:
        self._blocks.append(markdown.strip())

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self._blocks.append(markdown_table(headers, rows))

    def figure(self, name: str, caption: str, size: tuple[float, float] = (6.0, 4.0)):
        """A new matplotlib (figure, axes) saved as `<name>.png` and shown in the report here."""
        import matplotlib

        matplotlib.use("Agg")  # files only; never needs a display
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=size)
        self._figures[name] = fig
        self._blocks.append(f"![{caption}]({name}.png)\n\n*{caption}*")
        return fig, ax

    def markdown(self) -> str:
        return f"# {self.title}\n\n" + "\n\n".join(self._blocks) + "\n"

    def save(self, folder: str | Path) -> Path:
        """Write the figures and `report.md` into `folder` (created); returns the report path."""
        import matplotlib.pyplot as plt

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, fig in self._figures.items():
            fig.tight_layout()
            with atomic_path(folder / f"{name}.png") as tmp:
                fig.savefig(tmp, dpi=120)
            plt.close(fig)
        self._figures.clear()
        path = folder / "report.md"
        with atomic_write(path) as f:
            f.write(self.markdown())
        return path
