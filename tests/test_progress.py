"""Progress reaches a log: plain lines with done/total, rate and ETA when stderr is not a
terminal."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

from click.testing import CliRunner

from prismsim.cli.main import main
from prismsim.progress import LogLines


def test_a_log_line_by_hand():
    stream = io.StringIO()
    lines = LogLines("sweep x", 8, stream, every_s=3600)
    lines.start = time.monotonic() - 10.0  # 4 of 8 done in 10 s: 0.4/s, 4 more take 10 s
    lines("prism P=2", 3)
    lines("prism P=3")
    assert re.fullmatch(r"sweep x: 4/8 \(50 %\) in 10 s, 0\.4/s, ETA 10 s; last: prism P=3",
                        lines.line())
    lines.close()
    assert stream.getvalue().startswith("sweep x: 4/8 (50 %) in 10 s")  # the closing line


def test_durations_read_as_minutes_and_hours():
    stream = io.StringIO()
    lines = LogLines("w", None, stream, every_s=3600)
    lines.start = time.monotonic() - 3725.0
    lines("a", 2)
    assert lines.line().startswith("w: 2 in 1 h 02 min, ")
    lines.close()


def test_a_sweep_logs_progress_lines(tmp_path, monkeypatch):
    """tiny_vit: 7 workloads to trace and 21 points: 28 units, all reported."""
    monkeypatch.setenv("PRISMSIM_PROGRESS_S", "0.05")
    path = tmp_path / "tiny.yaml"
    path.write_text(Path("scenarios/tiny_vit.yaml").read_text())
    result = CliRunner().invoke(main, ["sweep", str(path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    logged = [line for line in result.stderr.splitlines() if line.startswith("sweep tiny: ")]
    assert logged and logged[-1].startswith("sweep tiny: 28/28 (100 %) in ")
    assert "/s" in logged[-1]


def test_a_started_item_shows_while_it_runs():
    stream = io.StringIO()
    lines = LogLines("sweep x", 3, stream, every_s=3600)
    lines("trace a")
    lines("accuracy b", 0)  # started, not finished
    assert lines.line().startswith("sweep x: 1/3 (33 %)")
    assert lines.line().endswith("; now: accuracy b")
    lines.close()


def test_needs_computed_in_turn_say_their_place_and_what_the_rest_takes():
    """Two of seven needs took 40 s: 20 s each, so the five left take 1 min 40 s."""
    from prismsim.sweep.backends import _place, run_many

    assert _place(0, 7, 0.0) == "1/7"
    assert _place(2, 7, 40.0) == "3/7, the rest about 1 min 40 s"

    class Need(str):
        def label(self) -> str:
            return f"accuracy {self}"

    seen: list[tuple[str, int]] = []
    out = run_many(str.upper, [Need("a"), Need("b")], progress=lambda s, n=1: seen.append((s, n)))
    assert out == {"a": "A", "b": "B"}
    assert [n for _, n in seen] == [0, 1, 0, 1]  # started, finished, started, finished
    assert seen[0][0] == "accuracy a [1/2]"
    assert seen[2][0].startswith("accuracy b [2/2, the rest about ")
