"""Markdown reports: tables, figures that parse, nothing half-written."""

from __future__ import annotations

from syncasd.evaluate.report import Report, markdown_table


def test_markdown_table():
    text = markdown_table(["model", "mAP"], [["a|b", 91.234], ["c", float("nan")], ["d", 3]])
    assert text.splitlines() == [
        "| model | mAP |",
        "|---|---|",
        "| a\\|b | 91.23 |",
        "| c | n/a |",
        "| d | 3 |",
    ]


def test_report_with_a_figure(tmp_path):
    r = Report("Title")
    r.text("Some words.")
    r.table(["x", "y"], [[1, 2.0]])
    fig, ax = r.figure("curve", "A curve")
    ax.plot([0, 1], [0, 1])
    path = r.save(tmp_path / "out")
    text = path.read_text()
    assert text.startswith("# Title\n\nSome words.\n\n| x | y |")
    assert "![A curve](curve.png)" in text
    png = (tmp_path / "out" / "curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["curve.png", "report.md"]
