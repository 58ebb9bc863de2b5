"""The demo report, built once per test session and shared by the report test modules.

Building it runs every analysis on the reference models (minutes on a cold cache), so it is
cached in this process: ``demo()`` returns the same report and saved directory on every call.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from explain.report import Report


@dataclass(frozen=True)
class Demo:
    report: Report
    path: Path  # the saved report directory
    build_seconds: float


@functools.lru_cache(maxsize=1)
def demo() -> Demo:
    from explain.report.build import build_demo

    root = Path(tempfile.mkdtemp(prefix="explain-demo-report-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    start = time.perf_counter()
    report = build_demo(quiet=True)
    seconds = time.perf_counter() - start
    return Demo(report, report.save(root), seconds)
