"""What goes into ``manifest.json`` besides the report's content: JSON-ready values with
deterministic text, content hashes of tables, the creation time."""

from __future__ import annotations

import datetime
import hashlib
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["created_time", "frame_sha256", "jsonable"]


def jsonable(value: Any) -> Any:
    """A JSON-ready copy of ``value`` with deterministic content (no memory addresses)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [jsonable(v) for v in items]
    if isinstance(value, Path):
        return str(value)
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:  # numpy / torch scalars
        return jsonable(item())
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        data = tolist()
        if not isinstance(data, list) or len(data) <= 64:
            return jsonable(data)
        return f"<{type(value).__name__} of {len(data)} items>"
    text = repr(value)
    if " at 0x" in text or len(text) > 200:
        return f"<{type(value).__module__}.{type(value).__qualname__}>"
    return text


def frame_sha256(frame: pd.DataFrame) -> str:
    """SHA-256 of a table's CSV text (columns, index and values): a stable dataset hash."""
    return hashlib.sha256(frame.to_csv(lineterminator="\n").encode()).hexdigest()


def created_time() -> str:
    """Now in UTC to the second, ISO 8601 (``SOURCE_DATE_EPOCH`` when set, for reproducible
    builds)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        moment = datetime.datetime.fromtimestamp(int(epoch), tz=datetime.UTC)
    else:
        moment = datetime.datetime.now(tz=datetime.UTC)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")
