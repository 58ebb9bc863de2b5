"""``explain.staging``: an overwrite never deletes what explain did not write, and a kill at any
step of a save leaves the complete old directory or the complete new one, never neither."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from explain.staging import MARKER, explain_files, staged_directory

STAGING = Path(__file__).resolve().parents[1] / "explain" / "staging.py"


def _write(target: Path, files: dict[str, str], *, overwrite: bool = True) -> None:
    with staged_directory(target, overwrite=overwrite, what="report") as staging:
        for name, text in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_text(text)


def _contents(directory: Path) -> dict[str, str]:
    return {p.relative_to(directory).as_posix(): p.read_text() for p in directory.rglob("*")
            if p.is_file() and p.name != MARKER}


def test_the_marker_lists_every_file_written(tmp_path):
    target = tmp_path / "out"
    _write(target, {"index.html": "a", "data/x.csv": "b"}, overwrite=False)
    assert explain_files(target) == ["data/x.csv", "index.html"]
    assert oct(target.stat().st_mode & 0o777) == "0o755"


def test_overwrite_refuses_a_directory_with_the_users_files(tmp_path):
    target = tmp_path / "out"
    _write(target, {"index.html": "old"})
    (target / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"1 file\(s\) explain did not write \('notes.txt'\)"):
        _write(target, {"index.html": "new"})
    assert (target / "notes.txt").read_text() == "mine"
    assert (target / "index.html").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging left


def test_overwrite_refuses_a_directory_explain_did_not_write(tmp_path):
    target = tmp_path / "photos"
    target.mkdir()
    (target / "holiday.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(FileExistsError, match=r"explain did not write it \(it has no "
                                              r"\.explain-output\.json"):
        _write(target, {"index.html": "new"})
    assert (target / "holiday.jpg").read_bytes() == b"\xff\xd8"


def test_overwrite_refuses_the_working_directory_and_one_above_it(tmp_path, monkeypatch):
    target = tmp_path / "out"
    _write(target, {"index.html": "old", "sub/x": "old"})
    monkeypatch.chdir(target)
    with pytest.raises(ValueError, match="it is the working directory or one above it"):
        _write(Path("."), {"index.html": "new"})
    monkeypatch.chdir(target / "sub")
    with pytest.raises(ValueError, match="it is the working directory or one above it"):
        _write(target, {"index.html": "new"})
    assert _contents(target) == {"index.html": "old", "sub/x": "old"}


def test_an_empty_directory_counts_as_absent_and_a_legacy_report_is_recognised(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    _write(empty, {"a.txt": "x"}, overwrite=False)
    assert _contents(empty) == {"a.txt": "x"}
    legacy = tmp_path / "legacy"
    (legacy / "figures").mkdir(parents=True)
    (legacy / "manifest.json").write_text(json.dumps({"versions": {}, "datasets": []}))
    (legacy / "figures" / "f.png").write_text("png")
    _write(legacy, {"index.html": "new"})
    assert _contents(legacy) == {"index.html": "new"}


def test_a_dead_writers_staging_directories_are_cleaned(tmp_path):
    target = tmp_path / "out"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    for kind in ("tmp", "old"):
        (tmp_path / f".out.{kind}-{dead}-abc123").mkdir()
    alive = tmp_path / f".out.tmp-{os.getppid()}-xyz"  # a running process's: kept
    alive.mkdir()
    other = tmp_path / f".other.tmp-{dead}-abc"        # another target's: kept
    other.mkdir()
    _write(target, {"a": "1"}, overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", alive.name, other.name])


# A save killed (SIGKILL) at each line that staging.py executes, one process per line: the
# module is loaded by path (it imports nothing of explain), so each process starts in ~0.1 s.
_KILLER = textwrap.dedent("""
    import importlib.util, os, signal, sys
    spec = importlib.util.spec_from_file_location("staging", sys.argv[1])
    staging = importlib.util.module_from_spec(spec); spec.loader.exec_module(staging)
    stop, count = int(sys.argv[3]), 0
    def tracer(frame, event, arg):
        global count
        if frame.f_code.co_filename != sys.argv[1]:
            return None
        if event == "line":
            count += 1
            if count == stop:
                os.kill(os.getpid(), signal.SIGKILL)
        return tracer
    sys.settrace(tracer)
    with staging.staged_directory(sys.argv[2], overwrite=True, what="report") as out:
        (out / "index.html").write_text("new")
        (out / "data").mkdir()
        (out / "data" / "t.csv").write_text("new")
    sys.settrace(None)
    print("lines", count)
""")


def test_a_kill_at_every_step_of_a_save_leaves_the_old_or_the_new_directory(tmp_path):
    target = tmp_path / "report"
    old = {"index.html": "old", "data/t.csv": "old"}
    new = {"index.html": "new", "data/t.csv": "new"}
    script = tmp_path / "killer.py"
    script.write_text(_KILLER)
    _write(target, old, overwrite=False)
    done = subprocess.run([sys.executable, str(script), str(STAGING), str(target), "0"],
                          capture_output=True, text=True, check=True)
    n_lines = int(done.stdout.split()[-1])
    assert n_lines > 20 and _contents(target) == new
    outcomes = set()
    for stop in range(1, n_lines + 1):
        _write(target, old)  # also cleans what the previous kill left behind
        assert sorted(p.name for p in tmp_path.iterdir()) == ["killer.py", "report"]
        run = subprocess.run([sys.executable, str(script), str(STAGING), str(target), str(stop)],
                             capture_output=True, text=True)
        assert run.returncode == -signal.SIGKILL, (stop, run.stderr)
        found = _contents(target)
        assert found in (old, new), (stop, found)
        outcomes.add(found["index.html"])
    assert outcomes == {"old", "new"}  # the kills did land on both sides of the swap


def test_staging_imports_nothing_of_explain():
    spec = importlib.util.spec_from_file_location("staging_alone", STAGING)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the kill test relies on it
    assert module.MARKER == MARKER
