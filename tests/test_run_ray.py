"""The Ray engine of explain.run on a local Ray instance (2 CPUs, no dashboard, started once for
the module): the same rows, shards and manifest as the local engine, resume that recomputes only
the missing shards, and worker errors that name the shard."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import warnings

import pandas as pd
import pytest
import ray

import explain
from explain.errors import ExplainWarning
from explain.run import read_manifest, run
from explain.run.ray_engine import ShardWorker, _cause, _connect, _worker_error, run_ray

ROWS = 40
CHUNK = 10   # 4 shards
# Float columns may differ in the last bits between engines (other torch thread counts).
TOLERANCE = {"check_exact": False, "rtol": 1e-6, "atol": 1e-9}
SAME_FIELDS = ("format", "format_version", "analysis", "config", "fingerprint", "chunk_size",
               "model", "data", "versions", "tables", "status")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def sentiment():
    import explain_models

    return explain.load_model(explain_models.ensure("sentiment"))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    import explain_models

    heldout = explain_models.ensure("sentiment") / "heldout.csv"
    path = tmp_path_factory.mktemp("ray-data") / "reviews.csv"
    pd.read_csv(heldout).head(ROWS).to_csv(path, index=False)
    return path


# max_length=12 truncates most reviews: an ExplainWarning per chunk, raised in the actors
JOBS = {"predict": {"label": "label_name", "max_length": 12},
        "attribute": {"methods": ["saliency"], "faithfulness": False}}


@pytest.fixture(scope="module")
def runs(local_ray, sentiment, data, tmp_path_factory):
    """Each job on the local engine, and on Ray with 2 workers (predict) and 1 (attribute),
    with the ExplainWarning messages each raised."""
    root = tmp_path_factory.mktemp("ray-runs")
    done = {}
    for (analysis, options), workers in zip(JOBS.items(), (2, 1), strict=True):
        results, said = [], []
        for name, engine in (("local", {}), ("ray", {"engine": "ray", "workers": workers})):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                results.append(run(analysis, sentiment, data, root / f"{analysis}-{name}",
                                   chunk_size=CHUNK, progress=False, **options, **engine))
            said.append({str(w.message) for w in caught if w.category is ExplainWarning})
        done[analysis] = (*results, *said)
    return done


@pytest.mark.slow
@pytest.mark.parametrize("analysis", JOBS)
def test_ray_writes_the_rows_shards_and_manifest_of_the_local_engine(runs, analysis):
    local, on_ray, local_warnings, ray_warnings = runs[analysis]
    assert ray_warnings == local_warnings   # raised in the actors, raised again here
    assert bool(local_warnings) == (analysis == "predict")
    assert on_ray.computed == 4 and on_ray.skipped == 0
    for table in local.tables:
        expected, found = local.table(table), on_ray.table(table)
        assert len(found) > 0 and found["row"].between(0, ROWS - 1).all()
        pd.testing.assert_frame_equal(found, expected, **TOLERANCE)
    ours, theirs = read_manifest(on_ray.out), read_manifest(local.out)
    assert set(ours) == set(theirs)
    assert ours["engine"] == "ray" and theirs["engine"] == "local"
    assert {k: ours[k] for k in SAME_FIELDS} == {k: theirs[k] for k in SAME_FIELDS}
    for mine, other in zip(ours["shards"], theirs["shards"], strict=True):
        assert mine["status"] == "done" and mine["rows"] == other["rows"]
        assert {t: (f["path"], f["rows"]) for t, f in mine["files"].items()} == \
               {t: (f["path"], f["rows"]) for t, f in other["files"].items()}


@pytest.mark.slow
def test_resume_recomputes_only_the_missing_shards(runs, sentiment, data, tmp_path, capfd):
    finished = runs["predict"][1]
    out = tmp_path / "resumed"
    shutil.copytree(finished.out, out)
    (out / "predictions" / "part-00001.parquet").unlink()          # a lost file
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["shards"][3] = {"index": 3, "rows": manifest["shards"][3]["rows"],
                             "status": "pending"}                  # a shard never committed
    manifest["status"] = "incomplete"
    (out / "manifest.json").write_text(json.dumps(manifest))
    untouched = {i: (out / "predictions" / f"part-0000{i}.parquet").stat().st_mtime_ns
                 for i in (0, 2)}

    capfd.readouterr()
    resumed = run("predict", sentiment, data, out, chunk_size=CHUNK, progress=False,
                  engine="ray", workers=1, **JOBS["predict"])
    assert (resumed.computed, resumed.skipped) == (2, 2)
    lines = [line for line in capfd.readouterr().err.splitlines()
             if line.startswith("explain run: shard")]   # the quiet mode: one line per shard
    assert sorted(line.split(" in ")[0] for line in lines) == [
        "explain run: shard 2/4 (rows 10-19)", "explain run: shard 4/4 (rows 30-39)"]
    assert resumed.manifest["status"] == "complete"
    assert {i: (out / "predictions" / f"part-0000{i}.parquet").stat().st_mtime_ns
            for i in (0, 2)} == untouched
    pd.testing.assert_frame_equal(resumed.table("predictions"), finished.table("predictions"),
                                  **TOLERANCE)
    again = run("predict", sentiment, data, out, chunk_size=CHUNK, progress=False,
                engine="ray", workers=2, **JOBS["predict"])
    assert (again.computed, again.skipped) == (0, 4)


@pytest.mark.slow
def test_a_worker_error_names_the_shard_and_the_original_message(local_ray, sentiment, data,
                                                                   tmp_path):
    """An empty text in row 25 fails shard 3/4 (rows 20-29) inside its actor. The model is
    in-memory (no checkpoint), so it travels to the actors through the object store."""
    frame = pd.read_csv(data)
    frame.loc[25, "text"] = " "
    broken = tmp_path / "broken.csv"
    frame.to_csv(broken, index=False)
    in_memory = explain.load_model(sentiment.model, tokenizer=sentiment.tokenizer,
                                   label_names=sentiment.label_names)
    assert in_memory.provenance["source"] == "in-memory"
    with pytest.raises(ValueError, match=r"shard 3/4 \(rows 20-29\) failed: the text column "
                                         r"'text' is empty or missing") as caught:
        run("predict", in_memory, broken, tmp_path / "out", chunk_size=CHUNK, progress=False,
            engine="ray", workers=1)
    assert "Traceback" not in str(caught.value)
    assert any("traceback in the Ray worker" in note for note in caught.value.__notes__)
    manifest = read_manifest(tmp_path / "out")
    assert manifest["status"] == "incomplete" and manifest["shards"][2]["status"] == "pending"


@pytest.mark.slow
def test_a_model_that_differs_from_its_checkpoint_is_refused(sentiment, data, tmp_path):
    """The actor's check, run in this process: the checkpoint's weights must hash to the
    driver's model."""
    import torch

    from explain.run import open_source
    from explain.run.config import RunConfig
    from explain.run.specs import RUN_ANALYSES

    worker = ShardWorker(spec=RUN_ANALYSES["predict"], source=open_source(data), out=str(tmp_path),
                         config=RunConfig("predict"), checkpoint=sentiment.provenance["source"],
                         load_options={"task": sentiment.task}, digest="0" * 64,
                         model_ref=None, threads=torch.get_num_threads())
    payload = json.loads(worker({"index": [1], "start": [10], "end": [20]})["result"][0])
    assert payload["index"] == 1
    error = _worker_error(payload["error"], "shard 2/4 (rows 10-19)")
    assert isinstance(error, ValueError)
    assert "shard 2/4 (rows 10-19): loading the model failed" in str(error)
    assert "does not hold the weights of the model given to explain.run" in str(error)


@pytest.mark.slow
def test_more_workers_than_cpus_is_refused(local_ray, sentiment, data, tmp_path):
    with pytest.raises(ValueError, match=r"workers=3 need 3 CPUs, but the Ray cluster has 2"):
        run("predict", sentiment, data, tmp_path / "out", chunk_size=CHUNK, progress=False,
            engine="ray", workers=3)


def test_without_ray_the_engine_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'explain\[ray\]'"):
        run_ray(None, None, None, None, None)


class _FakeRay:
    """Records how ``_connect`` initialises Ray."""

    def __init__(self, initialized):
        self.initialized, self.calls = initialized, []

    def is_initialized(self):
        return self.initialized

    def init(self, **kwargs):
        self.calls.append(kwargs)


def test_connect_starts_a_local_instance_only_when_none_is_running(monkeypatch):

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    fresh = _FakeRay(initialized=False)
    assert _connect(fresh, None, 64) is True   # started here: run_ray shuts it down
    assert fresh.calls == [{"num_cpus": max(64, os.cpu_count()), "include_dashboard": False,
                            "logging_level": logging.WARNING}]
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    cluster = _FakeRay(initialized=False)
    assert _connect(cluster, None, None) is True
    assert cluster.calls == [{"address": "ray://head:10001", "logging_level": logging.WARNING}]
    running = _FakeRay(initialized=True)
    assert _connect(running, None, 2) is False and running.calls == []   # left running
    with pytest.raises(ValueError, match="Ray is already initialised in this process"):
        _connect(running, "ray://head:10001", 2)


def test_a_ray_error_is_summed_up_by_its_innermost_exception():
    """What the driver's RuntimeError quotes from a Ray error (an actor that could not start)."""
    died = RuntimeError("The actor died because of an error raised in its creation task, "
                        "\x1b[36mray::MapWorker(MapBatches(ShardWorker)).__init__()\x1b[39m\n"
                        "  File \"/x.py\", line 3, in <module>\n    import mymod\n"
                        "ModuleNotFoundError: No module named 'mymod'\n")
    assert _cause(died) == "ModuleNotFoundError: No module named 'mymod'"
    assert _cause(RuntimeError("\n Task was killed: the node ran low on memory.\nSee logs")) \
        == "Task was killed: the node ran low on memory."
