"""The Ray engine: the pending shards of a run as one Ray Data job.

``ray.data.from_items`` of the pending shard descriptors (index, start, end; one block each) ->
``map_batches(ShardWorker, batch_size=1)`` over a fixed pool of actors. Each actor loads the
model once (from its checkpoint directory, ``loaded.provenance["source"]``, checked against the
driver's weights; an in-memory model travels once through the object store, ``ray.put``) and,
per shard, reads the rows with the same ``RowSource``, computes the same ``RunAnalysis`` and
writes the shard itself (``store.write_shard``, through ``local.compute_shard``). The driver
commits each record as it arrives, so a kill loses only the shards in flight, and shows the
same progress as the local engine. Tables, shards and manifest are the local engine's
(manifest ``"engine": "ray"``).

Where it runs: ``address`` (else ``RAY_ADDRESS``) connects to a running cluster; without
either, a local instance with ``max(workers, os.cpu_count())`` CPUs and no dashboard is
started, and shut down at the end (a cluster connected to, or a Ray this process had already
initialised, is left running). On a cluster, every node must reach the data, the run directory
and the checkpoint at the same paths (a shared file system) and have ``explain`` installed; so
must the module of a run analysis registered from outside ``explain`` (one defined in the
driver's script travels with the job). Locally, the actors import from the driver's working
directory.

Resources: ``workers`` actors (never more than the pending shards), one shard in flight each.
A CUDA model gets ``num_gpus=1`` per actor (default workers: the cluster's GPUs); a CPU model
gets ``max(1, CPUs // actors)`` CPUs per actor, capped at the largest node, and that many torch
threads (default workers: the cluster's CPUs, one thread each).

An error inside an actor (loading the model, or a shard) is raised on the driver as the nearest
builtin exception type, naming the shard and the original message; the worker's traceback is
attached as a note. Warnings raised in an actor are raised again on the driver. An actor that
dies (a lost node) is restarted and its shard retried, as Ray Data does by default.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import os
import re
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from ..checks import positive_int
from ..errors import ExplainWarning
from .config import RunConfig
from .local import ShardRate, compute_shard, shard_line
from .source import RowSource
from .specs import RunAnalysis
from .store import RunStore

__all__ = ["ShardWorker", "run_ray"]


def _import_ray():
    try:
        import ray
        import ray.data
    except ImportError as error:
        raise ImportError("the ray engine needs Ray: pip install 'explain[ray]'") from error
    return ray


def _builtin(cls: type, root: type) -> type:
    """The first class of ``cls.__mro__`` that the driver can name for sure: a builtin one or
    ``ExplainWarning``, below ``root``."""
    for klass in cls.__mro__:
        if issubclass(klass, root) and (klass is ExplainWarning or klass.__module__ == "builtins"):
            return klass
    return root


def _failure(error: BaseException, stage: str) -> dict[str, str]:
    return {"stage": stage, "type": _builtin(type(error), Exception).__name__,
            "name": type(error).__name__, "message": str(error),
            "traceback": traceback.format_exc()}


class ShardWorker:
    """One Ray actor: loads the model once, then computes, writes and returns one shard per call.

    ``checkpoint``: the model's directory, loaded with ``load_options``, whose state dict must
    hash to ``digest`` (the driver's model); else ``model_ref``: ``[ObjectRef]`` of the
    ``LoadedModel`` (in a list, so Ray does not resolve it on the way). ``threads``: torch
    threads. A failure to load is kept and reported by every call, naming the shard.
    """

    def __init__(self, *, spec: RunAnalysis, source: RowSource, out: str, config: RunConfig,
                 checkpoint: str | None, load_options: dict[str, Any], digest: str,
                 model_ref: list | None, threads: int) -> None:
        self.spec, self.source, self.out, self.config = spec, source, out, config
        self.failure = None
        try:
            import torch

            torch.set_num_threads(threads)
            self.loaded = self._load(checkpoint, load_options, digest, model_ref)
        except Exception as error:
            self.failure = _failure(error, "loading the model")

    @staticmethod
    def _load(checkpoint, load_options, digest, model_ref):
        if checkpoint is None:
            import ray

            return ray.get(model_ref[0])
        from ..loading import load_model
        from ..provenance import sha256_state_dict

        loaded = load_model(checkpoint, **load_options)
        if sha256_state_dict(loaded.model) != digest:
            raise ValueError(f"the checkpoint {checkpoint!r} does not hold the weights of the "
                             f"model given to explain.run (changed on disk, or edited in memory "
                             f"after loading); save the model (explain.save_model) and run on "
                             f"that directory")
        return loaded

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        index, start, end = (int(batch[key][0]) for key in ("index", "start", "end"))
        if self.failure is not None:
            payload = {"index": index, "error": self.failure}
        else:
            try:
                with warnings.catch_warnings(record=True) as caught:
                    record = compute_shard(self.spec, self.loaded, self.source, self.out,
                                           self.config, index, (start, end))
                payload = {"record": record,
                           "warnings": [(_builtin(w.category, Warning).__name__, str(w.message))
                                        for w in caught]}
            except Exception as error:
                payload = {"index": index, "error": _failure(error, "")}
        return {"result": np.array([json.dumps(payload)], dtype=object)}


def _worker_error(failure: dict[str, str], where: str) -> Exception:
    """The driver's exception for an actor's ``failure`` in ``where`` (the shard)."""
    kind = getattr(builtins, failure["type"])
    name = "" if failure["name"] == failure["type"] else f"{failure['name']}: "
    stage = f": {failure['stage']}" if failure["stage"] else ""
    message = (f"explain run (ray engine): {where}{stage} failed: {name}"
               f"{failure['message']}")
    try:
        error = kind(message)
    except TypeError:   # a builtin that takes other arguments (UnicodeDecodeError, ...)
        error = RuntimeError(message)
    error.add_note(f"traceback in the Ray worker:\n{failure['traceback'].rstrip()}")
    return error


def _cause(error: Exception) -> str:
    """The line of a Ray error that says what went wrong: its innermost exception line
    ("ModuleNotFoundError: No module named 'x'"), else its first line."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(error).splitlines()]
    lines = [line for line in lines if line] or [repr(error)]
    raised = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Exit): ", line)]
    return raised[-1] if raised else lines[0]


def _warning_category(name: str) -> type[Warning]:
    return ExplainWarning if name == "ExplainWarning" else getattr(builtins, name)


def _connect(ray, address: str | None, workers: int | None) -> bool:
    """Initialise Ray unless it already is; True when this call did (and must shut it down)."""
    if ray.is_initialized():
        if address is not None:
            raise ValueError(f"Ray is already initialised in this process, so address="
                             f"{address!r} cannot be connected to; drop address= (the run uses "
                             f"this process's Ray) or call ray.shutdown() first")
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is not None:
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        ray.init(num_cpus=max(workers or 0, os.cpu_count() or 1), include_dashboard=False,
                 logging_level=logging.WARNING)
    return True


def _resources(ray, loaded, workers: int | None, n_pending: int) -> tuple[int, int, int]:
    """``(actors, CPUs per actor, GPUs per actor)`` for this cluster and model."""
    total = ray.cluster_resources()
    if loaded.device.type == "cuda":
        gpus = int(total.get("GPU", 0))
        if gpus == 0:
            raise ValueError(f"the model is on {loaded.device}, but the Ray cluster has no GPU; "
                             f"load the model on the CPU (device='cpu') or connect to a cluster "
                             f"with GPUs (address=)")
        return min(workers or gpus, n_pending), 1, 1
    cpus = int(total.get("CPU", 0))
    node_cpus = max((int(node["Resources"].get("CPU", 0)) for node in ray.nodes()
                     if node.get("Alive")), default=cpus)
    workers = workers or max(cpus, 1)
    if workers > cpus:
        raise ValueError(f"workers={workers} need {workers} CPUs, but the Ray cluster has "
                         f"{cpus}; pass workers={max(cpus, 1)} or fewer")
    actors = min(workers, n_pending)
    return actors, max(1, min(cpus // actors, node_cpus)), 0


def _model_options(loaded) -> dict[str, Any]:
    """How each actor gets the model: its checkpoint directory, else the object store."""
    from ..provenance import sha256_state_dict

    source = loaded.provenance.get("source")
    if isinstance(source, str) and Path(source).is_dir():
        # "cuda", not "cuda:N": Ray shows each actor only the GPU it was given
        device = "cuda" if loaded.device.type == "cuda" else str(loaded.device)
        options = {"task": loaded.task, "label_names": loaded.label_names, "name": loaded.name,
                   "device": device,
                   "allow_pickle": loaded.provenance.get("weights_format") == "pickle"}
        if "attn_implementation" in loaded.provenance:
            options["attn_implementation"] = loaded.provenance["attn_implementation"]
        return {"checkpoint": str(Path(source).resolve()), "load_options": options,
                "digest": sha256_state_dict(loaded.model), "model_ref": None}
    import ray

    return {"checkpoint": None, "load_options": {}, "digest": "", "model_ref": [ray.put(loaded)]}


@contextlib.contextmanager
def _quiet_ray_data():
    """Ray Data's INFO lines (execution plans, timings) off while the run shows its own."""
    logger = logging.getLogger("ray.data")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


class _Progress:
    """The local engine's progress, for shards that finish in any order: a tqdm bar over rows,
    or one line per shard on stderr."""

    def __init__(self, title: str, n_rows: int, remaining: int, n_shards: int,
                 show_bar: bool) -> None:
        self.n_shards, self.remaining = n_shards, remaining
        self.rate = None    # from when the first shard started: Ray's and the actors' start-up
                            # would make the first rates (and ETAs) far too pessimistic
        self.bar = None
        if show_bar:
            from ..progress import tqdm_class

            tqdm = tqdm_class()

            self.bar = tqdm(total=n_rows, initial=n_rows - remaining, unit="row", desc=title,
                            file=sys.stderr, dynamic_ncols=True)

    def update(self, record: dict[str, Any]) -> None:
        now = time.perf_counter()
        if self.rate is None:
            self.rate = ShardRate(now - record["seconds"])
        n = record["rows"][1] - record["rows"][0]
        self.remaining -= n
        if self.bar is not None:
            self.bar.update(n)
            return
        print(shard_line(record["index"], self.n_shards, tuple(record["rows"]),
                         record["seconds"], self.rate.update(n, now), self.remaining),
              file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_ray(spec: RunAnalysis, model, source: RowSource, store: RunStore, config: RunConfig, *,
            workers: int | None = None, address: str | None = None,
            progress: bool | None = None) -> int:
    """Compute every pending shard of ``store`` on Ray; returns how many were computed.

    ``model``: the ``LoadedModel`` (or what ``explain.loading.as_loaded`` takes). ``workers``:
    actors (default: one per CPU of the cluster, or per GPU for a CUDA model). ``address``: a
    Ray cluster (default ``RAY_ADDRESS``, else a local instance). ``progress``: the tqdm bar
    (``None``: when stderr is a terminal), else one line per shard. Nothing is started when no
    shard is pending.
    """
    from ..loading import as_loaded

    ray = _import_ray()
    if workers is not None:
        workers = positive_int(workers, "workers", fix="pass the number of Ray actors, e.g. 2")
    loaded = as_loaded(model, analysis="run()")
    pending = store.pending()
    if not pending:
        return 0
    n_shards = len(store.manifest["shards"])
    started = _connect(ray, address, workers)
    shown = stream = None
    committed = 0
    try:
        actors, cpus, gpus = _resources(ray, loaded, workers, len(pending))
        kwargs = {"spec": spec, "source": source, "out": str(Path(store.out).resolve()),
                  "config": config, "threads": cpus, **_model_options(loaded)}
        items = [{"index": i, "start": store.rows(i)[0], "end": store.rows(i)[1]}
                 for i in pending]
        results = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            ShardWorker, batch_size=1, batch_format="numpy", fn_constructor_kwargs=kwargs,
            # one shard in flight per actor: shards are seconds long, and a kill loses only
            # the shards being computed, none queued behind them
            compute=ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=1),
            num_cpus=cpus, num_gpus=gpus or None)
        results.context.enable_progress_bars = False   # ours instead
        results.context.print_on_execution_start = False
        shown = _Progress(f"explain run {spec.name} (ray, {actors} workers)", source.n_rows,
                          sum(end - start for start, end in map(store.rows, pending)),
                          n_shards, sys.stderr.isatty() if progress is None else bool(progress))
        with _quiet_ray_data():
            stream = iter(results.iter_rows())
            for row in stream:
                payload = json.loads(row["result"])
                if "error" in payload:
                    start, end = store.rows(payload["index"])
                    raise _worker_error(payload["error"], f"shard {payload['index'] + 1}/"
                                                          f"{n_shards} (rows {start}-{end - 1})")
                for category, message in payload["warnings"]:
                    warnings.warn(message, _warning_category(category), stacklevel=2)
                store.commit(payload["record"])
                committed += 1
                shown.update(payload["record"])
    except ray.exceptions.RayError as error:
        raise RuntimeError(
            f"explain run (ray engine) stopped: {type(error).__name__}: {_cause(error)}; "
            f"{n_shards - len(pending) + committed} of {n_shards} shards are done and kept: "
            f"rerun the same command once the cause is fixed") from None
    finally:
        if stream is not None and hasattr(stream, "close"):
            stream.close()   # stops the job's actors when the loop ended early
        if shown is not None:
            shown.close()
        if started:
            ray.shutdown()
    return len(pending)
