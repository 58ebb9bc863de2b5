"""The local engine: the pending shards one after another in this process.

For each pending shard: read its rows (``RowSource.read``), compute the analysis
(``RunAnalysis.compute``), write the shard (``store.write_shard``) and commit it to the manifest
(``RunStore.commit``). Only one chunk is in memory at a time, so peak memory does not grow with
the number of rows. Progress: a tqdm bar over rows (rows, rate, ETA), or, when the bar is off,
one line per shard on stderr (the rate smoothed over the last shards, as the bar's)::

    explain run: shard 3/128 (rows 512-767) in 12.3 s; 20.8 rows/s; ETA 25 min
"""

from __future__ import annotations

import sys
import time
from typing import Any

from .config import RunConfig
from .source import RowSource
from .specs import RunAnalysis, check_tables
from .store import RunStore, write_shard

__all__ = ["ShardRate", "compute_shard", "format_eta", "run_local", "shard_line"]

#: Weight of the newest shard in the quiet mode's rate (tqdm's bar smooths with the same 0.3).
SMOOTHING = 0.3


def format_eta(seconds: float) -> str:
    """``"12 s"``, ``"25 min"`` or ``"1.5 h"``."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def shard_line(index: int, n_shards: int, rows: tuple[int, int], seconds: float, rate: float,
               remaining_rows: int) -> str:
    """The quiet mode's line for a finished shard (rows shown inclusive, counting from 0)."""
    eta = format_eta(remaining_rows / rate) if rate > 0 else "unknown"
    return (f"explain run: shard {index + 1}/{n_shards} (rows {rows[0]}-{rows[1] - 1}) in "
            f"{seconds:.1f} s; {rate:.1f} rows/s; ETA {eta}")


class ShardRate:
    """Rows per second for the quiet mode's line, smoothed as tqdm's bar smooths its rate: an
    exponential moving average (weight ``SMOOTHING`` for the newest) of the rows of each finished
    shard and of the seconds since the one before, so a pause or a change of load fades out of
    the ETA after a few shards instead of weighing on it for the rest of the run."""

    def __init__(self, began: float) -> None:
        self.last = began
        self.rows: float | None = None
        self.seconds = 0.0

    def update(self, rows: int, now: float) -> float:
        """The rate after a shard of ``rows`` rows finished at ``now`` (``time.perf_counter``)."""
        seconds, self.last = max(now - self.last, 1e-9), now
        if self.rows is None:
            self.rows, self.seconds = float(rows), seconds
        else:
            self.rows = SMOOTHING * rows + (1 - SMOOTHING) * self.rows
            self.seconds = SMOOTHING * seconds + (1 - SMOOTHING) * self.seconds
        return self.rows / self.seconds


def compute_shard(spec: RunAnalysis, loaded, source: RowSource, out, config: RunConfig,
                  index: int, rows: tuple[int, int]) -> dict[str, Any]:
    """Read, compute and write one shard; returns its record (``write_shard``). Touches only
    the shard's own files, so any engine can call it."""
    start = time.perf_counter()
    frame = source.read(*rows)
    tables = spec.compute(loaded, frame, config)
    check_tables(spec, tables)
    return write_shard(out, index, tables, rows=rows, seconds=time.perf_counter() - start)


def run_local(spec: RunAnalysis, loaded, source: RowSource, store: RunStore, config: RunConfig,
              *, progress: bool | None = None) -> int:
    """Compute every pending shard of ``store``; returns how many were computed.
    ``progress``: the tqdm bar (``None``: when stderr is a terminal), else one line per shard."""
    pending = store.pending()
    n_shards = len(store.manifest["shards"])
    remaining = sum(end - start for start, end in map(store.rows, pending))
    show_bar = sys.stderr.isatty() if progress is None else bool(progress)
    bar = None
    if show_bar:
        from ..progress import tqdm_class

        tqdm = tqdm_class()

        bar = tqdm(total=source.n_rows, initial=source.n_rows - remaining, unit="row",
                   desc=f"explain run {spec.name}", file=sys.stderr, dynamic_ncols=True)
    rate = ShardRate(time.perf_counter())
    try:
        for index in pending:
            rows = store.rows(index)
            record = compute_shard(spec, loaded, source, store.out, config, index, rows)
            store.commit(record)
            n = rows[1] - rows[0]
            remaining -= n
            if bar is not None:
                bar.update(n)
            else:
                print(shard_line(index, n_shards, rows, record["seconds"],
                                 rate.update(n, time.perf_counter()), remaining),
                      file=sys.stderr, flush=True)
    finally:
        if bar is not None:
            bar.close()
    return len(pending)
