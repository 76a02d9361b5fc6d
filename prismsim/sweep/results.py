"""The results folder's table: ``results.csv`` grows a complete line per finished point
(a killed sweep resumes from it), and is rewritten whole, with ``results.parquet``, at
the end of a sweep (with the skipped points' rows, and their ``skipped`` column, if
any)."""

from __future__ import annotations

import csv as csvlib
import io
import time
from pathlib import Path
from typing import Any

import pandas as pd

from prismsim.strategies import SKIPPED
from prismsim.sweep.rows import layout, table_columns
from prismsim.userfiles import UserFileError, read_text

FLUSH_ROWS = 512  # rows buffered before they are written ...
FLUSH_EVERY_S = 0.5  # ... or seconds since the last write, whichever comes first


def read_rows(csv: Path, grid_ids: set[str]) -> dict[str, dict[str, Any]]:
    """Rows already written for points of this grid (a torn last line is dropped)."""
    if not csv.exists() or csv.stat().st_size == 0:
        return {}
    with open(csv, newline="") as f:
        records = list(csvlib.reader(f))
    whole = [r for r in records[1:] if len(r) == len(records[0]) and r[0] in grid_ids]
    buf = io.StringIO()
    csvlib.writer(buf, lineterminator="\n").writerows([records[0], *whole])
    df = pd.read_csv(io.StringIO(buf.getvalue()), dtype={"point_id": str})
    df = df.dropna(subset=["latency_s"]).drop_duplicates("point_id", keep="last")
    return {row["point_id"]: row for row in df.to_dict("records")}


def _header(csv: Path) -> list[str] | None:
    with open(csv, newline="") as f:
        return next(csvlib.reader(f), None)


def other_columns(csv: Path, sampled: bool = False, moves: bool = False) -> bool:
    """Whether results.csv has a header this sweep does not write (another version's, or
    a scenario's with or without samples:, events: or a trace); with or without skips
    are both its own."""
    header, columns = _header(csv), layout(sampled, moves)
    return header is not None and header not in (columns, [*columns, SKIPPED])


class RowWriter:
    """Appends rows to results.csv in complete, flushed lines. Rows are written in batches
    (``FLUSH_ROWS`` or ``FLUSH_EVERY_S``) and :meth:`write` returns the rows each write
    made durable, so a caller reports a point done only once its row is on disk: a kill
    loses the points of the batch in flight, never a reported one (a torn last line is
    ended here and dropped on resume). Rows go in the file's layout (a finished sweep's
    table may have the ``skipped`` column)."""

    def __init__(self, csv: Path, columns: list[str]):
        new = not csv.exists() or csv.stat().st_size == 0
        torn = False
        self.columns = columns if new else _header(csv) or columns
        if not new:
            with open(csv, "rb") as f:
                f.seek(-1, 2)
                torn = f.read(1) != b"\n"
        self.file = open(csv, "a", newline="")  # noqa: SIM115 (closed in close())
        self.writer = csvlib.writer(self.file, lineterminator="\n")  # floats as repr()
        self.pending: list[dict[str, Any]] = []
        self.last_flush = time.monotonic()
        if torn:
            self.file.write("\n")
        if new:
            self.writer.writerow(columns)
            self.file.flush()

    def write(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        """Queue a row; the rows now on disk (empty while the batch fills)."""
        self.pending.append(row)
        due = time.monotonic() - self.last_flush >= FLUSH_EVERY_S
        return self.flush() if due or len(self.pending) >= FLUSH_ROWS else []

    def flush(self) -> list[dict[str, Any]]:
        rows, self.pending = self.pending, []
        self.writer.writerows([["" if r.get(c) is None else r[c] for c in self.columns]
                               for r in rows])
        self.file.flush()
        self.last_flush = time.monotonic()
        return rows

    def close(self) -> list[dict[str, Any]]:
        rows = self.flush()
        self.file.close()
        return rows


def write_table(df: pd.DataFrame, out: Path) -> None:
    """results.csv and results.parquet, each replaced atomically (a reader sees the old
    or the new table, never half of one)."""
    for name, write in (("results.csv", lambda p: df.to_csv(p, index=False)),
                        ("results.parquet", lambda p: df.to_parquet(p, index=False))):
        tmp = out / f".{name}.tmp"
        write(tmp)
        tmp.replace(out / name)


def as_written(rows: list[dict[str, Any]], sampled: bool = False, moves: bool = False
               ) -> pd.DataFrame:
    """Fresh rows and rows read back from CSV in one representation: as the file has it."""
    table = pd.DataFrame(rows, columns=table_columns(rows, sampled, moves))
    return pd.read_csv(io.StringIO(table.to_csv(index=False)), dtype={"point_id": str})


def read_table(out: Path) -> pd.DataFrame:
    """The results table of a folder, to redraw its plots; a missing or damaged one is an
    error naming it."""
    csv = out / "results.csv"
    if not csv.exists():
        raise UserFileError(f"{out}: no results.csv (run prismsim sweep first)")
    try:
        df = pd.read_csv(io.StringIO(read_text(csv)), dtype={"point_id": str})
    except (ValueError, pd.errors.ParserError) as err:
        if isinstance(err, UserFileError):
            raise
        raise UserFileError(f"{csv}: not a results table: {str(err).splitlines()[0]}") \
            from None
    missing = [c for c in ("strategy", "devices", "bandwidth_mbps", "latency_s") if c not in df]
    if missing or df.empty:
        raise UserFileError(f"{csv}: not a results table prismsim wrote (missing columns "
                            f"{missing})" if missing else f"{csv}: no rows")
    return df
