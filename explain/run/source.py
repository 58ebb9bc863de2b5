"""``RowSource``: the rows of a run's input, read by row range, never all at once.

``open_source(data)`` takes a ``.csv`` / ``.tsv`` file, a ``.parquet`` file, a directory of
``.parquet`` files (read in name order, as one table) or the name of a built-in dataset
(``explain.datasets.DATASETS``). How each is read by row range:

* Parquet: the row groups' row counts (file metadata) give each group's global offset;
  ``read(start, end)`` reads only the row groups that overlap the range, then slices.
* CSV: rows have no byte offsets (a quoted field may hold a newline), so ``read`` streams the
  file with ``pyarrow.csv.open_csv`` from the start, skipping batches before ``start``; a read
  that starts where the previous one ended continues the same stream, so a run that reads its
  chunks in order reads the file once. Column types are inferred from the first block, the
  same way at every open, so every chunk has the same types; a later value that does not fit
  them is an error naming the file (convert the file to Parquet to fix the types).
* A built-in dataset: loaded once into memory (they are small, at most 45,222 rows).

Every frame ``read`` returns has the int64 column ``row`` first: the 0-based position of the
row in the whole input.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..checks import positive_int

__all__ = ["FORMATS", "ROW", "RowSource", "open_source"]

#: The name of the row-index column every chunk and every table starts with.
ROW = "row"
#: Input formats: name -> what it is.
FORMATS = {"csv": "a comma-separated file (.csv)", "tsv": "a tab-separated file (.tsv)",
           "parquet": "a Parquet file (.parquet)",
           "parquet-directory": "a directory of .parquet files, read in name order",
           "dataset": "a built-in dataset of explain.datasets.DATASETS"}
_BLOCK = 1 << 20


def _sha256_file(path: Path, digest) -> None:
    with path.open("rb") as handle:
        for piece in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(piece)


class RowSource:
    """Rows of one input by range. Built by ``open_source``; see the module docstring.

    ``path`` (str: the file, directory or dataset name), ``format`` (a key of ``FORMATS``),
    ``n_rows``, ``columns`` (tuple of the input's column names), ``sha256`` (of the input's
    bytes, streamed; a directory: of its files' names and bytes; a dataset: of its values).
    """

    def __init__(self, path: str, fmt: str, *, files: tuple[Path, ...] = (),
                 frame: pd.DataFrame | None = None) -> None:
        self.path = path
        self.format = fmt
        self._files = files
        self._frame = frame
        self._stream: Any = None      # CSV: (reader, position, leftover batch)
        self._groups: list[tuple[int, int, int, int]] = []  # parquet: (start, end, file, group)
        if fmt in ("csv", "tsv"):
            self.columns, self.n_rows = self._scan_csv()
        elif fmt == "dataset":
            self.columns, self.n_rows = tuple(map(str, frame.columns)), len(frame)
        else:
            self.columns, self.n_rows = self._scan_parquet()
        if ROW in self.columns:
            raise ValueError(f"{path!r} has a column {ROW!r}, the name explain run gives the row "
                             f"index; rename that column")
        self.sha256 = self._hash()

    # ------------------------------------------------------------------ scanning

    def _csv_reader(self):
        from pyarrow import csv

        delimiter = "\t" if self.format == "tsv" else ","
        return csv.open_csv(self._files[0], read_options=csv.ReadOptions(block_size=_BLOCK),
                            parse_options=csv.ParseOptions(delimiter=delimiter,
                                                           newlines_in_values=True))

    def _batches(self, reader) -> Iterator[Any]:
        import pyarrow as pa

        while True:
            try:
                yield reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as error:
                raise ValueError(f"{self.path!r} cannot be read as {self.format.upper()}: {error}; "
                                 f"a column whose values change type after the first "
                                 f"{_BLOCK >> 20} MiB cannot be streamed: convert the file to "
                                 f"Parquet with the types it should have") from None

    def _scan_csv(self) -> tuple[tuple[str, ...], int]:
        import pyarrow as pa

        try:
            reader = self._csv_reader()
        except pa.ArrowInvalid as error:
            raise ValueError(f"{self.path!r} cannot be read as {self.format.upper()}: "
                             f"{error}") from None
        columns = tuple(reader.schema.names)
        return columns, sum(batch.num_rows for batch in self._batches(reader))

    def _scan_parquet(self) -> tuple[tuple[str, ...], int]:
        import pyarrow.parquet as pq

        columns = None
        start = 0
        for f, path in enumerate(self._files):
            meta = pq.ParquetFile(path).metadata
            names = tuple(meta.schema.to_arrow_schema().names)
            names = tuple(n for n in names if n != "__index_level_0__")
            if columns is None:
                columns = names
            elif names != columns:
                raise ValueError(f"{str(path)!r} has the columns {list(names)}, but "
                                 f"{str(self._files[0])!r} has {list(columns)}; every Parquet "
                                 f"file of {self.path!r} needs the same columns in the same order")
            for g in range(meta.num_row_groups):
                n = meta.row_group(g).num_rows
                self._groups.append((start, start + n, f, g))
                start += n
        return columns or (), start

    def _hash(self) -> str:
        digest = hashlib.sha256()
        if self.format == "dataset":
            digest.update(repr(self.columns).encode())
            digest.update(pd.util.hash_pandas_object(self._frame, index=False).to_numpy()
                          .tobytes())
        elif self.format == "parquet-directory":
            for path in self._files:
                digest.update(path.name.encode())
                _sha256_file(path, digest)
        else:
            _sha256_file(self._files[0], digest)
        return digest.hexdigest()

    # ------------------------------------------------------------------ reading

    def describe(self) -> dict[str, Any]:
        """The manifest's ``data`` entry: path, format, sha256, n_rows, columns."""
        return {"path": self.path, "format": self.format, "sha256": self.sha256,
                "n_rows": self.n_rows, "columns": list(self.columns)}

    def chunks(self, chunk_size: int) -> list[tuple[int, int]]:
        """``[(start, end), ...]``: consecutive row ranges of ``chunk_size`` rows (the last may
        be shorter) covering every row."""
        size = positive_int(chunk_size, "chunk_size", fix="pass the number of rows per shard, "
                                                          "e.g. 256")
        return [(start, min(start + size, self.n_rows)) for start in range(0, self.n_rows, size)]

    def read(self, start: int, end: int) -> pd.DataFrame:
        """Rows ``start`` (inclusive) to ``end`` (exclusive) with the ``row`` column first."""
        if not (isinstance(start, (int, np.integer)) and isinstance(end, (int, np.integer))
                and 0 <= start <= end <= self.n_rows):
            raise IndexError(f"rows {start!r}-{end!r} are outside {self.path!r} "
                             f"({self.n_rows} rows)")
        if self.format == "dataset":
            frame = self._frame.iloc[start:end].reset_index(drop=True)
        elif self.format in ("csv", "tsv"):
            frame = self._read_csv(start, end)
        else:
            frame = self._read_parquet(start, end)
        frame.insert(0, ROW, np.arange(start, end, dtype=np.int64))
        return frame

    def _read_parquet(self, start: int, end: int) -> pd.DataFrame:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pieces = []
        for g_start, g_end, f, g in self._groups:
            if g_end <= start or g_start >= end or g_start == g_end:
                continue
            table = pq.ParquetFile(self._files[f]).read_row_group(g, columns=list(self.columns))
            lo, hi = max(start, g_start) - g_start, min(end, g_end) - g_start
            pieces.append(table.slice(lo, hi - lo))
        if not pieces:
            return pq.ParquetFile(self._files[0]).schema_arrow.empty_table().to_pandas()
        return pa.concat_tables(pieces).to_pandas()

    def _read_csv(self, start: int, end: int) -> pd.DataFrame:
        import pyarrow as pa

        if self._stream is None or self._stream[1] != start:
            self._stream = (self._batches(self._csv_reader()), 0, None)
        batches, position, leftover = self._stream
        pieces = []
        while position < end:
            batch = leftover if leftover is not None else next(batches, None)
            leftover = None
            if batch is None:
                break
            lo, hi = max(start - position, 0), min(end - position, batch.num_rows)
            if lo < hi:
                pieces.append(batch.slice(lo, hi - lo))
            if position + batch.num_rows > end:   # the rest of this batch starts the next chunk
                leftover = batch.slice(end - position)
                position = end
            else:
                position += batch.num_rows
        self._stream = (batches, position, leftover)
        if not pieces:
            return pd.DataFrame({name: [] for name in self.columns})
        return pa.Table.from_batches(pieces).to_pandas()

    def __getstate__(self) -> dict[str, Any]:   # the open CSV stream stays behind (Ray actors)
        return {**self.__dict__, "_stream": None}


def open_source(data: str | os.PathLike) -> RowSource:
    """The ``RowSource`` of ``data``: a ``.csv``/``.tsv``/``.parquet`` file, a directory of
    ``.parquet`` files, or a built-in dataset name. ``FileNotFoundError`` / ``ValueError`` name
    the path and what is accepted."""
    from ..datasets import DATASETS

    if not isinstance(data, (str, os.PathLike)):
        raise TypeError(f"data is a path to a .csv, .tsv or .parquet file, a directory of "
                        f".parquet files, or a dataset name ({', '.join(DATASETS)}); got "
                        f"{type(data).__name__} (write a DataFrame with frame.to_parquet(path))")
    path = Path(data)
    if isinstance(data, str) and data in DATASETS and not path.exists():
        return RowSource(data, "dataset", frame=DATASETS[data].load())
    if path.is_dir():
        files = tuple(sorted(p for p in path.iterdir() if p.suffix.lower() == ".parquet"
                             and p.is_file()))
        if not files:
            raise ValueError(f"the directory {str(path)!r} holds no .parquet files; pass a "
                             f"directory of .parquet files, or one .csv/.tsv/.parquet file")
        return RowSource(str(path), "parquet-directory", files=files)
    if not path.is_file():
        raise FileNotFoundError(f"no such data file or directory: {str(path)!r}; pass a .csv, "
                                f".tsv or .parquet file, a directory of .parquet files, or a "
                                f"dataset name ({', '.join(DATASETS)})")
    suffix = path.suffix.lower()
    fmt = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}.get(suffix)
    if fmt is None:
        raise ValueError(f"unknown data format {suffix!r} of {str(path)!r}; explain run reads "
                         f".csv, .tsv and .parquet files and directories of .parquet files")
    return RowSource(str(path), fmt, files=(path,))
