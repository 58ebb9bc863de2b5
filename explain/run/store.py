"""The output directory of a run: Parquet shards and a manifest, written so that a kill at any
moment loses at most the shard in progress.

Layout::

    OUT/manifest.json
    OUT/<table>/part-00000.parquet      one file per table per shard (5-digit shard index)

``write_shard`` is pure (it touches only the shard's own files; a Ray actor can call it): each
table is written to ``<table>/.part-NNNNN.parquet.tmp-<random>``, fsynced and renamed into place
(``os.replace``), and the record it returns carries each file's SHA-256. ``RunStore`` lives on
the driver: it opens (or refuses) a directory, says which shards are ``pending()`` and
``commit``\\ s each finished shard by rewriting ``manifest.json`` atomically. A shard counts as
done only when the manifest says so *and* its files exist with the recorded SHA-256, so a file
renamed into place before a kill, or a file damaged later, is recomputed on resume.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["FORMAT", "FORMAT_VERSION", "MANIFEST", "RunStore", "read_manifest", "read_table",
           "shard_path", "write_shard"]

FORMAT = "explain-run"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_TMP = ".tmp-"
_FIX = "pass --out NEW_DIR (overwrite=False, a new directory) or --overwrite (overwrite=True)"


def shard_path(table: str, index: int) -> str:
    """The path of shard ``index`` of ``table``, relative to the run directory."""
    return f"{table}/part-{index:05d}.parquet"


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}{_TMP}{secrets.token_hex(4)}")
    try:
        with tmp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_directory(path.parent)


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
    return sink.getvalue().to_pybytes()


def write_shard(out: str | os.PathLike, index: int, tables: Mapping[str, pd.DataFrame], *,
                rows: Sequence[int], seconds: float) -> dict[str, Any]:
    """Write shard ``index`` (rows ``rows = (start, end)`` of the input, computed in
    ``seconds``) of the run in ``out``: one Parquet file per table, each put in place
    atomically. Returns the shard record for ``RunStore.commit``: ``{"index", "rows",
    "files": {table: {"path", "sha256", "rows"}}, "seconds", "status": "done"}``."""
    out = Path(out)
    files = {}
    for name, frame in tables.items():
        relative = shard_path(name, index)
        data = _parquet_bytes(frame)
        (out / name).mkdir(exist_ok=True)
        _write_atomic(out / relative, data)
        files[name] = {"path": relative, "sha256": hashlib.sha256(data).hexdigest(),
                       "rows": len(frame)}
    return {"index": int(index), "rows": [int(rows[0]), int(rows[1])], "files": files,
            "seconds": round(float(seconds), 3), "status": "done"}


def _sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for piece in iter(lambda: handle.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


def read_manifest(out: str | os.PathLike) -> dict[str, Any]:
    """The manifest of the run in ``out``; ``FileNotFoundError`` / ``ValueError`` when ``out``
    holds none, or one that is not an explain run's."""
    path = Path(out) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{str(out)!r} holds no {MANIFEST}: it is not the output "
                                f"directory of explain run")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{str(path)!r} is not valid JSON ({error}); {_FIX}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not the manifest of an explain run (no \"format\": "
                         f"\"{FORMAT}\"); {_FIX}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{str(path)!r} is format version {manifest.get('format_version')!r}; "
                         f"this explain reads version {FORMAT_VERSION}; {_FIX}")
    return manifest


def _flat(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config with its options as top-level keys (``options.n_steps``)."""
    flat = {k: v for k, v in config.items() if k != "options"}
    flat.update({f"options.{k}": v for k, v in config.get("options", {}).items()})
    return flat


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(what, detail)`` for each of config, model, data, chunk size that differs."""
    found = []
    if old["fingerprint"] != new["fingerprint"]:
        before, after = _flat(old["config"]), _flat(new["config"])
        changed = [f"{k} {before.get(k)!r} -> {after.get(k)!r}"
                   for k in sorted(set(before) | set(after))
                   if k != "chunk_size" and before.get(k) != after.get(k)]
        found.append(("config", "; ".join(changed) or "fingerprint"))
    if old["model"]["sha256"] != new["model"]["sha256"]:
        found.append(("model", f"{old['model']['name']} {old['model']['sha256'][:12]} -> "
                               f"{new['model']['name']} {new['model']['sha256'][:12]}"))
    if old["data"]["sha256"] != new["data"]["sha256"]:
        found.append(("data", f"{old['data']['path']} {old['data']['sha256'][:12]} -> "
                              f"{new['data']['path']} {new['data']['sha256'][:12]}"))
    if old["chunk_size"] != new["chunk_size"]:
        found.append(("chunk size", f"the directory's shards hold {old['chunk_size']} rows, "
                                    f"this run asks for {new['chunk_size']}; pass --chunk-size "
                                    f"{old['chunk_size']} to resume"))
    return found


class RunStore:
    """The driver's side of a run directory (``open``, ``pending``, ``commit``, ``manifest``)."""

    def __init__(self, out: Path, manifest: dict[str, Any]) -> None:
        self.out = out
        self.manifest = manifest

    @classmethod
    def open(cls, out: str | os.PathLike, fields: Mapping[str, Any], *,
             shards: Sequence[tuple[int, int]], overwrite: bool = False) -> RunStore:
        """Open ``out`` for a run described by ``fields`` (the manifest's ``analysis``,
        ``config``, ``fingerprint``, ``chunk_size``, ``model``, ``data``, ``versions``,
        ``engine``, ``tables``) whose shards are the row ranges ``shards``.

        A missing or empty directory starts a new run. A directory with the manifest of the
        same run (fingerprint, model and data hashes, chunk size) resumes it; another run's is a
        ``ValueError`` saying what differs, unless ``overwrite`` (then it is deleted and started
        again). A directory with anything else in it is refused, ``overwrite`` or not, and so is
        the working directory. Stray ``.tmp-`` files of a killed run are removed.
        """
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(f"--out {str(out)!r} is a file; pass a directory")
        if out.exists() and out.resolve() in (Path.cwd().resolve(), *Path.cwd().resolve().parents):
            raise ValueError(f"--out {str(out)!r} is the working directory (or holds it); pass "
                             f"--out NEW_DIR, a directory of its own for the run")
        if out.is_dir():   # a manifest a kill left half-written is never trusted: remove it
            for path in out.glob(f".{MANIFEST}{_TMP}*"):
                path.unlink()
        entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
        if entries and MANIFEST not in entries:
            raise FileExistsError(f"{str(out)!r} is not empty and is not an explain run "
                                  f"directory (no {MANIFEST}; it holds {', '.join(entries[:5])}"
                                  f"{', ...' if len(entries) > 5 else ''}); it is never "
                                  f"overwritten: pass --out NEW_DIR")
        if entries:
            old = read_manifest(out)
            if overwrite:
                strangers = sorted(set(entries) - {MANIFEST, *old.get("tables", {})})
                if strangers:
                    raise FileExistsError(f"{str(out)!r} holds an explain run and other files "
                                          f"({', '.join(strangers[:5])}); --overwrite deletes "
                                          f"only a directory that holds nothing but a run: "
                                          f"pass --out NEW_DIR")
                shutil.rmtree(out)
            else:
                differences = _differences(old, fields)
                if differences:
                    what = " and ".join(w for w, _ in differences)
                    details = "; ".join(f"{w}: {d}" for w, d in differences)
                    raise ValueError(f"{str(out)!r} holds an explain run with another {what} "
                                     f"({details}); {_FIX}")
                store = cls(out, old)
                store._clean()
                store.manifest["engine"] = fields["engine"]
                return store
        out.mkdir(parents=True, exist_ok=True)
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, **fields,
                    "shards": [{"index": i, "rows": [int(a), int(b)], "status": "pending"}
                               for i, (a, b) in enumerate(shards)],
                    "status": "complete" if not shards else "incomplete",
                    "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                    "seconds": 0.0}
        store = cls(out, manifest)
        store._write()
        return store

    def _clean(self) -> None:
        for table in self.manifest["tables"]:
            folder = self.out / table
            if folder.is_dir():
                for path in folder.iterdir():
                    if _TMP in path.name:
                        path.unlink()

    def _done(self, record: Mapping[str, Any]) -> bool:
        if record.get("status") != "done" or set(record["files"]) != set(self.manifest["tables"]):
            return False
        return all(_sha256(self.out / f["path"]) == f["sha256"] for f in record["files"].values())

    def pending(self) -> list[int]:
        """Indices of the shards to compute: not done, or whose files are missing or fail their
        SHA-256 (those are marked pending again)."""
        found = []
        for record in self.manifest["shards"]:
            if not self._done(record):
                if record.get("status") == "done":
                    record["status"] = "pending"
                found.append(record["index"])
        return found

    def rows(self, index: int) -> tuple[int, int]:
        """The row range ``(start, end)`` of shard ``index``."""
        start, end = self.manifest["shards"][index]["rows"]
        return start, end

    def commit(self, record: Mapping[str, Any]) -> None:
        """Record a finished shard (``write_shard``'s return) and rewrite the manifest."""
        index = record["index"]
        if list(record["rows"]) != list(self.rows(index)):
            raise ValueError(f"shard {index} covers rows {self.rows(index)}, not "
                             f"{record['rows']}")
        self.manifest["shards"][index] = dict(record)
        shards = self.manifest["shards"]
        self.manifest["seconds"] = round(sum(s.get("seconds", 0.0) for s in shards), 3)
        self.manifest["status"] = ("complete" if all(s["status"] == "done" for s in shards)
                                   else "incomplete")
        self._write()

    def _write(self) -> None:
        _write_atomic(self.out / MANIFEST,
                      (json.dumps(self.manifest, indent=1, allow_nan=False) + "\n").encode())


def read_table(out: str | os.PathLike, table: str,
               columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
    """The shards of ``table`` of the complete run in ``out``, one DataFrame per shard in index
    order (only one in memory at a time); ``columns``: read only these. ``ValueError`` when the
    run is incomplete or has no such table."""
    import pyarrow.parquet as pq

    manifest = read_manifest(out)
    if table not in manifest["tables"]:
        raise ValueError(f"the {manifest['analysis']} run in {str(out)!r} has no table "
                         f"{table!r}; its tables: {', '.join(manifest['tables'])}")
    shards = manifest["shards"]
    done = sum(s["status"] == "done" for s in shards)
    if manifest["status"] != "complete" or done != len(shards):
        raise ValueError(f"the run in {str(out)!r} is incomplete: {done} of {len(shards)} "
                         f"shards done; rerun the same command to finish")
    for record in shards:
        path = Path(out) / record["files"][table]["path"]
        yield pq.read_table(path, columns=None if columns is None else list(columns)).to_pandas()
