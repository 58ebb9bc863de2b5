"""``PeakMemory``: the peak memory of a block of code, for the scorecard and the benchmarks."""

from __future__ import annotations

import os
import threading
import time
import tracemalloc

__all__ = ["PeakMemory"]


def _rss() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return -1


class PeakMemory:
    """Context manager measuring peak memory above the level at entry, in bytes.

    On Linux it samples the resident set size (``/proc/self/statm``) every ``interval`` seconds,
    which sees torch's tensor memory. Where ``/proc`` is missing it falls back to
    ``tracemalloc``'s peak (Python objects only; it does not see tensor storage)."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.peak = 0
        self.rss_peak = 0
        self.python_peak = 0

    def __enter__(self) -> PeakMemory:
        self._start = _rss()
        self._max = self._start
        self._stop = threading.Event()
        self._tracing = self._start < 0 and not tracemalloc.is_tracing()
        if self._tracing:
            tracemalloc.start()
        if self._start < 0:
            tracemalloc.reset_peak()
            self._python_start = tracemalloc.get_traced_memory()[0]
        if self._start >= 0:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.is_set():
            value = _rss()
            if value > self._max:
                self._max = value
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._start >= 0:
            self._thread.join()
            self._max = max(self._max, _rss())
            self.rss_peak = max(0, self._max - self._start)
        if self._start < 0:
            self.python_peak = max(0, tracemalloc.get_traced_memory()[1] - self._python_start)
        if self._tracing:
            tracemalloc.stop()
        self.peak = max(self.rss_peak, self.python_peak)
