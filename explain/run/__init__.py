"""Dataset-scale runs: one analysis over every row of a file, in shards that survive a kill.

``explain.run(analysis, model, data, out)`` reads ``data`` (CSV, Parquet, a directory of
Parquet files or a built-in dataset) in chunks of ``chunk_size`` rows, computes ``analysis``
(a key of ``RUN_ANALYSES``) on each chunk and writes one Parquet file per table per chunk into
``out``, with ``manifest.json`` (config, model and data hashes, versions, shards with row
ranges, checksums and status). Rerunning the same call resumes: finished shards are skipped,
missing or damaged ones recomputed; a changed config, model, data or chunk size is refused.

Modules: ``config`` (``RunConfig``), ``source`` (``RowSource``, ``open_source``), ``specs``
(``RunAnalysis``, ``RUN_ANALYSES``, ``register_run_analysis``), ``store`` (``write_shard``,
``RunStore``, ``read_table``), ``local`` (the local engine); ``ray_engine`` (the same job on
Ray Data) is imported only for ``engine="ray"``; ``aggregate`` reads a finished run's shards
into dataset-level tables, one shard in memory at a time. ``explain.run`` is this package's
``run`` function (the package face re-exports it); import its modules as ``explain.run.store``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd

from ..checks import check_columns, one_of, positive_int
from .config import RunConfig
from .source import RowSource, open_source
from .specs import RUN_ANALYSES, RunAnalysis, modality_of, register_run_analysis
from .store import RunStore, read_manifest, read_table

__all__ = ["ENGINES", "RUN_ANALYSES", "RowSource", "RunAnalysis", "RunConfig", "RunResult",
           "open_source", "read_manifest", "read_table", "register_run_analysis", "run"]

#: Engines of ``explain.run``: name -> what runs the shards.
ENGINES: Mapping[str, str] = MappingProxyType({
    "local": "this process, one shard after another",
    "ray": "Ray Data actors (one model per actor) on a local instance or a cluster "
           "(address= / RAY_ADDRESS); needs pip install 'explain[ray]'",
})
#: Column names of the predict and score tables that a keep column cannot take.
_RESERVED = ("row", "predicted_label", "predicted_index", "predicted_score")
#: Rows per shard when ``chunk_size`` is not given.
DEFAULT_CHUNK_SIZE = 256


@dataclass(frozen=True)
class RunResult:
    """A finished run: ``out`` (the directory), ``manifest`` (its manifest.json), ``computed``
    and ``skipped`` (shards computed now, and found already done), ``seconds`` (this call's wall
    time). ``table(name)`` reads a table whole; ``read(name)`` streams it shard by shard."""

    out: Path
    manifest: Mapping[str, Any]
    computed: int
    skipped: int
    seconds: float

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(self.manifest["tables"])

    def read(self, table: str, columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
        """The shards of ``table``, one DataFrame each (``store.read_table``)."""
        return read_table(self.out, table, columns)

    def table(self, table: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """All of ``table`` in one DataFrame (fine for small runs; stream large ones)."""
        return pd.concat(list(self.read(table, columns)), ignore_index=True)

    def summary(self) -> str:
        n_rows = self.manifest["data"]["n_rows"]
        return (f"explain run {self.manifest['analysis']}: {n_rows} rows in "
                f"{self.computed + self.skipped} shards ({self.computed} computed, "
                f"{self.skipped} already done) in {self.seconds:.1f} s -> {self.out}/ "
                f"(tables: {', '.join(self.tables)})")


def _model_identity(loaded) -> dict[str, Any]:
    """The manifest's ``model``: name, ``sha256`` of the weights as they are in memory
    (``sha256_state_dict``, so an edited model is another model) and its source."""
    from ..provenance import sha256_state_dict

    return {"name": loaded.name, "sha256": sha256_state_dict(loaded.model),
            "source": loaded.provenance.get("source")}


def _columns(source: RowSource, loaded, spec: RunAnalysis, *, text_column, label, keep):
    """The text column, label and keep columns, checked against the input's columns."""
    header = pd.DataFrame(columns=list(source.columns))
    where = repr(source.path)
    if loaded.is_text:
        data_card = loaded.card.get("data", {}) if isinstance(loaded.card, Mapping) else {}
        text_column = text_column or data_card.get("text_column") or "text"
        check_columns(header, {"text": text_column}, where=where)
    elif text_column is not None:
        raise ValueError(f"text_column={text_column!r} applies to text models; {loaded.name!r} "
                         f"is a {loaded.task!r} model")
    else:
        needed = (list(loaded.encoder.columns) if loaded.encoder is not None
                  else list(loaded.feature_names or ()))
        check_columns(header, {"feature": needed}, where=where)
    if not spec.keeps and (label is not None or keep):
        copying = ", ".join(name for name, other in RUN_ANALYSES.items() if other.keeps)
        raise ValueError(f"label= and keep= (--label, --keep) apply to the analyses whose tables "
                         f"copy input columns ({copying}); the tables of explain run "
                         f"{spec.name} hold the row ids: join them with the input on 'row'")
    check_columns(header, {"label": label}, where=where)
    if keep is None:
        probe = RunConfig(spec.name, text_column=text_column, label=label)
        keep = spec.default_keep(source.columns, probe) if spec.default_keep else ()
    keep = tuple([keep] if isinstance(keep, str) else keep)
    check_columns(header, {"keep": list(keep)}, where=where)
    reserved = {*_RESERVED, *(f"score_{name}" for name in loaded.label_names or ()),
                *(["label"] if label is not None else [])}
    taken = [c for c in keep if c in reserved]
    if taken:
        raise ValueError(f"the keep columns {taken} have names the tables use already; rename "
                         f"them in the input or leave them out of keep")
    return text_column, label, keep


def _config(spec: RunAnalysis, loaded, source: RowSource, *, methods, text_column, label, keep,
            chunk_size, options: dict[str, Any]) -> RunConfig:
    seed = options.pop("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        valid = ", ".join(["seed", *spec.options])
        raise TypeError(f"explain run {spec.name} takes no option {', '.join(unknown)}; its "
                        f"options: {valid}")
    if spec.uses_methods:
        methods = tuple([methods] if isinstance(methods, str) else methods or
                        ("integrated_gradients",))
    elif methods:
        raise ValueError(f"methods apply to explain run attribute, not {spec.name!r}")
    if "faithfulness" in options and options["faithfulness"] is True:
        options["faithfulness"] = "aopc"   # the same run as the default, the same fingerprint
    text_column, label, keep = _columns(source, loaded, spec, text_column=text_column,
                                        label=label, keep=keep)
    config = RunConfig(spec.name, methods=methods or (), text_column=text_column, label=label,
                       keep=keep, chunk_size=chunk_size, seed=seed,
                       options={**spec.options, **options})
    config.to_json()   # an option JSON cannot hold fails here, before any work
    return config


def run(analysis: str, model, data: str | os.PathLike, out: str | os.PathLike, *,
        engine: str = "local", chunk_size: int = DEFAULT_CHUNK_SIZE,
        methods: str | Sequence[str] | None = None, text_column: str | None = None,
        label: str | None = None, keep: Sequence[str] | None = None, overwrite: bool = False,
        progress: bool | None = None, workers: int | None = None, address: str | None = None,
        **options) -> RunResult:
    """Run ``analysis`` over every row of ``data`` into the directory ``out``; resumable.

    ``analysis``: a key of ``RUN_ANALYSES`` (``predict``, ``score``, ``attribute``,
    ``attention``, ``counterfactual``). ``model``: a ``LoadedModel`` or a checkpoint directory.
    ``data``: a ``.csv`` / ``.tsv`` / ``.parquet`` file, a directory of ``.parquet`` files or a
    dataset name of ``explain.datasets.DATASETS``. ``out``: the run directory (see
    ``explain.run.store``). ``engine``: a key of ``ENGINES``. ``chunk_size``: rows per shard.
    ``methods``: attribution methods of ``attribute`` (default integrated gradients).
    ``text_column``: the column of texts (default: the model card's ``data.text_column``, else
    ``"text"``); a tabular model reads its feature columns. ``label``: a column of true labels
    copied (as str) into the tables. ``keep``: columns copied as they are (default: none; for
    ``score`` every column but the text and label). ``overwrite``: replace the explain run in
    ``out`` (never a directory with other files). ``progress``: a tqdm bar (``None``: when
    stderr is a terminal), else one line per shard. ``workers``, ``address``: the Ray engine's
    actor count and cluster address. ``options``: ``seed`` and the analysis's options
    (``RUN_ANALYSES[analysis].options``: e.g. ``n_steps``, ``faithfulness``, ``target``,
    ``batch_size``, ``max_length`` for ``attribute``).

    Returns a ``RunResult``. A directory that holds another run (config, model, data or chunk
    size) is a ``ValueError`` saying what differs.
    """
    from ..loading import LoadedModel, as_loaded

    began = time.perf_counter()
    spec = RUN_ANALYSES[one_of(analysis, RUN_ANALYSES, "run analysis")]
    one_of(engine, ENGINES, "engine")
    chunk_size = positive_int(chunk_size, "chunk_size", fix="pass the number of rows per "
                                                            "shard, e.g. 256")
    if engine == "local" and (workers is not None or address is not None):
        raise ValueError("workers= and address= apply to engine='ray'")
    loaded = model if isinstance(model, LoadedModel) else as_loaded(model, analysis="run()")
    kind = modality_of(loaded)
    if kind not in spec.modalities:
        raise ValueError(f"explain run {spec.name} applies to {', '.join(spec.modalities)} "
                         f"models; {loaded.name!r} is a {kind} model")
    source = open_source(data)
    config = _config(spec, loaded, source, methods=methods, text_column=text_column,
                     label=label, keep=keep, chunk_size=chunk_size, options=dict(options))
    if spec.check is not None:
        spec.check(loaded, config)
    from ..provenance import versions

    fields = {"analysis": spec.name, "config": config.to_dict(),
              "fingerprint": config.fingerprint(), "chunk_size": chunk_size,
              "model": _model_identity(loaded), "data": source.describe(),
              "versions": versions(), "engine": engine, "tables": dict(spec.tables)}
    store = RunStore.open(out, fields, shards=source.chunks(chunk_size), overwrite=overwrite)
    n_shards = len(store.manifest["shards"])
    if engine == "ray":
        from .ray_engine import run_ray

        computed = run_ray(spec, loaded, source, store, config, workers=workers,
                           address=address, progress=progress)
    else:
        from .local import run_local

        computed = run_local(spec, loaded, source, store, config, progress=progress)
    return RunResult(out=Path(out), manifest=MappingProxyType(store.manifest), computed=computed,
                     skipped=n_shards - computed, seconds=time.perf_counter() - began)

