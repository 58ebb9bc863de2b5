"""``explain run`` is resumable and loss-free: ``kill -9`` at random moments, then the same
command again, ends with the same shard files, byte for byte, as a run never interrupted; a
damaged shard is recomputed, a leftover temporary file removed; another config, model, data or
chunk size is refused, and ``--overwrite`` deletes only an explain run."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import explain
from explain.run.store import MANIFEST, shard_path

ROWS = 60
CHUNK = 6
N_SHARDS = ROWS // CHUNK


@pytest.fixture(scope="module")
def checkpoint():
    import explain_models

    return explain_models.ensure("sentiment")


@pytest.fixture(scope="module")
def loaded(checkpoint):
    return explain.load_model(checkpoint)


@pytest.fixture(scope="module")
def data(checkpoint, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    pd.read_csv(checkpoint / "heldout.csv").head(ROWS).to_csv(path, index=False)
    return path


def _command(checkpoint, data, out) -> list[str]:
    return [sys.executable, "-m", "explain", "run", "predict", str(checkpoint), "--data",
            str(data), "--out", str(out), "--chunk-size", str(CHUNK), "--label", "label",
            "--quiet"]


def _environment() -> dict[str, str]:
    return {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}


def _shards(out: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under the run's table folder."""
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((out / "predictions").iterdir())}


@pytest.fixture(scope="module")
def reference(loaded, data, tmp_path_factory) -> Path:
    """The uninterrupted run, through the API (the command's call, in this process)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    explain.run("predict", loaded, data, out, chunk_size=CHUNK, label="label", progress=False)
    return out


def _done(out: Path) -> int:
    return sum((out / shard_path("predictions", i)).is_file() for i in range(N_SHARDS))


def _kill_when(process: subprocess.Popen, out: Path, *, seconds: float | None = None,
               shards: int | None = None, delay: float = 0.0, timeout: float = 120) -> bool:
    """SIGKILL ``process`` ``delay`` seconds after it has run ``seconds``, or after ``shards``
    shards of ``out`` exist; False when it finished first."""
    began = time.monotonic()
    while (time.monotonic() - began < seconds) if shards is None else (_done(out) < shards):
        if process.poll() is not None:
            return False
        if time.monotonic() - began > timeout:
            process.kill()
            pytest.fail("the run made no progress")
        time.sleep(0.02)
    time.sleep(delay)
    if process.poll() is not None:
        return False
    process.kill()
    process.wait()
    return True


def test_killed_at_random_moments_then_resumed_equals_an_uninterrupted_run(
        checkpoint, data, reference, tmp_path):
    out = tmp_path / "run"
    rng = random.Random(13)
    command = _command(checkpoint, data, out)
    kills = 0
    for attempt in range(3):
        process = subprocess.Popen(command, env=_environment(), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        if attempt == 0:   # a random moment after the start, perhaps before any shard
            moment = {"seconds": rng.uniform(0.5, 3.0)}
        else:              # a random moment after a later shard appears
            moment = {"shards": min(_done(out) + rng.randint(1, 2), N_SHARDS - 1)}
        kills += _kill_when(process, out, delay=rng.uniform(0.0, 0.3), **moment)
    assert kills >= 2, "the runs finished before they could be killed; use more rows"
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["status"] == "incomplete" or _done(out) == N_SHARDS
    finished = subprocess.run(command, env=_environment(), capture_output=True, text=True,
                              timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert _shards(out) == _shards(reference)
    manifest = json.loads((out / MANIFEST).read_text())
    expected = json.loads((reference / MANIFEST).read_text())
    assert manifest["status"] == "complete"
    assert [s["files"] for s in manifest["shards"]] == [s["files"] for s in expected["shards"]]
    assert [s["rows"] for s in manifest["shards"]] == [[i, i + CHUNK]
                                                        for i in range(0, ROWS, CHUNK)]


@pytest.fixture
def copy(reference, tmp_path) -> Path:
    """A finished run to damage, copied from the reference."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(reference, out)
    return out


def _resume(loaded, data, out, **changes):
    arguments = {"chunk_size": CHUNK, "label": "label", "progress": False, **changes}
    return explain.run("predict", loaded, data, out, **arguments)


def test_a_damaged_shard_is_recomputed_and_a_leftover_temporary_file_removed(
        loaded, data, reference, copy, capsys):
    damaged = copy / shard_path("predictions", 3)
    content = bytearray(damaged.read_bytes())
    content[len(content) // 2] ^= 0xFF
    damaged.write_bytes(bytes(content))
    (copy / shard_path("predictions", 5)).unlink()
    leftover = copy / "predictions" / ".part-00007.parquet.tmp-0badf00d"
    leftover.write_bytes(b"half a shard")
    result = _resume(loaded, data, copy)
    assert (result.computed, result.skipped) == (2, N_SHARDS - 2)
    assert not leftover.exists()
    # the shards recomputed here equal the reference's (same machine, same settings)
    assert _shards(copy) == _shards(reference)
    assert "shard 4/10 (rows 18-23)" in capsys.readouterr().err
    again = _resume(loaded, data, copy)
    assert (again.computed, again.skipped) == (0, N_SHARDS)


@pytest.mark.parametrize("change, what", [
    ({"batch_size": 4}, "another config (config: options.batch_size 32 -> 4)"),
    ({"chunk_size": 7}, "the directory's shards hold 6 rows, this run asks for 7"),
    ({"keep": ["movie_name"]}, "keep [] -> ['movie_name']"),
])
def test_another_config_or_chunk_size_is_refused(loaded, data, copy, change, what):
    with pytest.raises(ValueError, match="--out NEW_DIR") as error:
        _resume(loaded, data, copy, **change)
    assert what in str(error.value)


def test_another_model_or_data_is_refused(checkpoint, data, copy, tmp_path):
    import torch

    edited = explain.load_model(checkpoint)
    with torch.no_grad():
        next(edited.model.parameters()).add_(1e-3)
    with pytest.raises(ValueError, match=r"another model \(model: sentiment "):
        _resume(edited, data, copy)
    other = tmp_path / "other.csv"
    frame = pd.read_csv(data)
    frame.loc[0, "text"] = "A different first review."
    frame.to_csv(other, index=False)
    with pytest.raises(ValueError, match=r"another data \(data: "):
        _resume(explain.load_model(checkpoint), other, copy)


def test_overwrite_replaces_only_an_explain_run(loaded, data, copy, tmp_path, monkeypatch):
    result = _resume(loaded, data, copy, chunk_size=30, overwrite=True)
    assert result.computed == 2 and result.manifest["chunk_size"] == 30
    stranger = tmp_path / "mine"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not an explain run directory"):
        _resume(loaded, data, stranger, overwrite=True)
    assert (stranger / "notes.txt").read_text() == "keep me"
    (copy / "notes.txt").write_text("mine too")
    with pytest.raises(FileExistsError, match="holds an explain run and other files"):
        _resume(loaded, data, copy, overwrite=True)
    monkeypatch.chdir(copy)
    with pytest.raises(ValueError, match="is the working directory"):
        _resume(loaded, data, ".", overwrite=True)
