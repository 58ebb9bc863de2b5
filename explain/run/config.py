"""``RunConfig``: everything that decides what a dataset-scale run computes.

A run directory is bound to its config: ``fingerprint()`` hashes every field that changes the
rows of the tables (the analysis, methods, columns, seed and the analysis's options), so a
resume with other settings is refused instead of mixing two configs in one directory.
``chunk_size`` is recorded beside it but left out of the fingerprint: it is the shard layout,
compared on its own so that the error can name both sizes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RunConfig"]


@dataclass(frozen=True)
class RunConfig:
    """The settings of one run.

    ``analysis``: a key of ``explain.run.RUN_ANALYSES``. ``methods``: attribution methods
    (``attribute`` only, else empty). ``text_column``: the column of texts (``None`` for a
    tabular model). ``label``: the column of true labels copied into the tables, or ``None``.
    ``keep``: columns of the data copied into the tables as they are. ``chunk_size``: rows per
    shard. ``seed``: the seed of sampling methods. ``options``: the analysis's options with
    their defaults filled in (``RunAnalysis.options``), sorted by name.
    """

    analysis: str
    methods: tuple[str, ...] = ()
    text_column: str | None = None
    label: str | None = None
    keep: tuple[str, ...] = ()
    chunk_size: int = 256
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", tuple(self.methods))
        object.__setattr__(self, "keep", tuple(self.keep))
        object.__setattr__(self, "options", dict(sorted(dict(self.options).items())))

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON types (tuples as lists)."""
        return {"analysis": self.analysis, "methods": list(self.methods),
                "text_column": self.text_column, "label": self.label, "keep": list(self.keep),
                "chunk_size": self.chunk_size, "seed": self.seed, "options": dict(self.options)}

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces); ``TypeError`` for an option JSON cannot hold."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"),
                          allow_nan=False)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunConfig:
        """The config ``to_dict`` wrote (e.g. ``manifest["config"]``)."""
        return cls(**dict(values))

    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON of every field but ``chunk_size``."""
        values = self.to_dict()
        values.pop("chunk_size")
        canonical = json.dumps(values, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(canonical.encode()).hexdigest()
