"""The argument checks of `explain`, in one place.

Every public function and CLI subcommand checks its arguments through these, so that a bad
value always gets the same kind of message: the argument's name, the value given, and what to
pass instead. Each check returns the value converted to its plain type (``int``, ``float``,
``str``, ``list[str]``).
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["as_names", "available_device", "check_columns", "check_feature_groups", "non_negative_float", "one_of",
           "positive_int", "probability", "read_json_file"]

_SHOWN_COLUMNS = 20


def read_json_file(path: Any, what: str) -> Any:
    """The JSON in ``path`` (a ``pathlib.Path``); a ``ValueError`` that names the file, the line
    and column, and the fix when it is not valid UTF-8 JSON. ``what``: e.g. ``"the model's
    config"``."""
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"cannot read {what} {str(path)!r}: it is not UTF-8 text (byte "
                         f"{error.start}); restore the file from where it came from") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"cannot read {what} {str(path)!r}: not valid JSON at line "
                         f"{error.lineno}, column {error.colno} ({error.msg}); fix the file or "
                         f"restore it from where it came from") from None


def _with_fix(message: str, fix: str | None) -> str:
    return f"{message}; {fix}" if fix else message


def positive_int(value: Any, name: str, *, minimum: int = 1, fix: str | None = None) -> int:
    """``value`` as an ``int`` if it is an integer ``>= minimum``, else ``ValueError`` naming
    ``name``, the value and ``fix`` (bools, floats and strings are refused, even ``2.0``)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
            or value < minimum):
        bound = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(_with_fix(f"{name} must be {bound}, got {value!r}", fix))
    return int(value)


def memory_size(value: Any, name: str, *, default: int) -> int:
    """A size in bytes: an int, or a string such as ``'512MB'``, ``'2GiB'`` (``None``: the
    default)."""
    if value is None:
        return default
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]?)i?B?\s*", value, re.IGNORECASE)
        if not match:
            raise ValueError(f"{name} {value!r} is not a size; pass bytes (int) or a string like "
                             f"'512MB' or '2GB'")
        scale = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
        value = int(float(match.group(1)) * scale[match.group(2).upper()])
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive number of bytes, got {value!r}")
    return value


def _real(value: Any) -> bool:
    return (not isinstance(value, bool) and isinstance(value, numbers.Real)
            and not math.isnan(value))


def non_negative_float(value: Any, name: str, *, fix: str | None = None) -> float:
    """``value`` as a ``float`` if it is a real number ``>= 0`` (not NaN, not a bool), else
    ``ValueError`` naming ``name``, the value and ``fix``."""
    if not _real(value) or value < 0:
        raise ValueError(_with_fix(f"{name} must be a non-negative number, got {value!r}", fix))
    return float(value)


def probability(value: Any, name: str, *, open_interval: bool = True,
                fix: str | None = None) -> float:
    """``value`` as a ``float`` if it lies in ``(0, 1)`` (``[0, 1]`` when not
    ``open_interval``), else ``ValueError`` naming ``name``, the value and ``fix``."""
    inside = _real(value) and (0 < value < 1 if open_interval else 0 <= value <= 1)
    if not inside:
        interval = "(0, 1)" if open_interval else "[0, 1]"
        raise ValueError(_with_fix(f"{name} must be a number in {interval}, got {value!r}", fix))
    return float(value)


def _suggestion(value: str, choices: Sequence[str], *, cutoff: float) -> str:
    close = difflib.get_close_matches(value, list(choices), n=3, cutoff=cutoff)
    return f"did you mean {' or '.join(map(repr, close))}? " if close else ""


def one_of(value: Any, choices: Iterable[str], name: str) -> str:
    """``value`` if it is one of ``choices`` (a sequence or the keys of a mapping), else
    ``ValueError`` naming ``name``, the value, close matches and every valid choice."""
    valid = [str(choice) for choice in choices]
    if isinstance(value, str) and value in valid:
        return value
    hint = _suggestion(value, valid, cutoff=0.6) if isinstance(value, str) else ""
    raise ValueError(f"unknown {name} {value!r}; {hint}valid: {', '.join(valid)}")


def as_names(value: str | Sequence[str], name: str) -> list[str]:
    """A column name or a sequence of them (``"a,b"`` is split on commas) -> list of names;
    ``ValueError`` naming ``name`` when there is none or one is given twice."""
    if isinstance(value, str):
        names = [v.strip() for v in value.split(",") if v.strip()]
    else:
        names = list(value)
    if not names:
        raise ValueError(f"no {name} given; pass a column name or a list of column names")
    if len(set(names)) != len(names):
        raise ValueError(f"{name} lists a column twice: {names}")
    return names


def check_columns(frame: Any, columns: Sequence[str] | Mapping[str, str | Sequence[str] | None],
                  *, where: str) -> list[str]:
    """Check that ``frame`` (a ``pandas.DataFrame``) has the named columns; return their names.

    ``columns``: a sequence of column names, or a mapping role -> name, names or ``None`` (no
    column for that role), e.g. ``{"label": "y", "sensitive": ["race", "sex"], "text": None}``.
    ``where`` names the table in messages (``"the data"``, ``"'audit.csv'"``). A missing column
    raises ``KeyError`` naming it, its role, ``where``, close matches and the columns there are;
    a name that is not a ``str`` raises ``TypeError``.
    """
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"data must be a pandas.DataFrame, got {type(frame).__name__}")
    roles = columns.items() if isinstance(columns, Mapping) else [(None, columns)]
    available = [str(c) for c in frame.columns]
    checked: list[str] = []
    missing: list[str] = []
    for role, names in roles:
        if names is None:
            continue
        single = isinstance(names, str) or not isinstance(names, Iterable)
        for name in [names] if single else names:
            if not isinstance(name, str):
                what = f"the {role} column" if role else "a column"
                raise TypeError(f"{what} is named by a str, got {name!r}")
            if name in frame.columns:
                checked.append(name)
                continue
            column = f"the {role} column" if role else "column"
            hint = _suggestion(name, available, cutoff=0.5).strip()
            missing.append(f"{column} {name!r} is not in {where}" + (f"; {hint}" if hint else ""))
    if missing:
        shown = ", ".join(map(repr, available[:_SHOWN_COLUMNS]))
        extra = len(available) - _SHOWN_COLUMNS
        more = f" and {extra} more" if extra > 0 else ""
        raise KeyError(f"{'; '.join(missing)} (columns: {shown or 'none'}{more})")
    return checked


def _group_name(members: Sequence[str]) -> str:
    prefixes = {str(m).partition("=")[0] for m in members}
    if len(prefixes) != 1 or not all("=" in str(m) for m in members):
        raise ValueError(f"feature group {list(members)!r} has no shared 'column=' prefix to "
                         f"name it; pass a mapping instead: feature_groups={{'name': "
                         f"{list(members)!r}}}")
    return prefixes.pop()


def check_feature_groups(groups, feature_names) -> dict[str, list[int]] | None:
    """One-hot feature groups (``load_model(..., feature_groups=...)``: a mapping name -> member
    feature names, or a list of member lists named by their shared ``column=`` prefix) ->
    group name -> feature indices, checked: every member a feature, no feature in two groups."""
    if groups is None:
        return None
    if feature_names is None:
        raise ValueError("feature_groups= needs feature_names=[...] (the groups name features)")
    if isinstance(groups, str) or not isinstance(groups, (Mapping, Sequence)):
        raise TypeError(f"feature_groups is a mapping name -> feature names or a list of "
                        f"feature-name lists, got {groups!r}")
    if not isinstance(groups, Mapping):
        groups = {_group_name(members): members for members in groups}
    names = list(feature_names)
    index = {feature: i for i, feature in enumerate(names)}
    owner: dict[str, str] = {}
    result: dict[str, list[int]] = {}
    for group, members in groups.items():
        if not isinstance(group, str):
            raise TypeError(f"a feature group is named by a str, got {group!r}")
        if isinstance(members, str) or not isinstance(members, Sequence) or not members:
            raise ValueError(f"feature group {group!r} must list its member feature names, got "
                             f"{members!r}")
        if group in index and list(members) != [group]:
            raise ValueError(f"feature group {group!r} has the name of a feature outside it; "
                             f"name the group by its column (e.g. {group.partition('=')[0]!r}) "
                             f"or another name that is not a feature")
        for member in members:
            if member not in index:
                hint = _feature_hint(member, names)
                raise ValueError(f"feature group {group!r} lists {member!r}, which is not a "
                                 f"feature name; {hint}")
            if member in owner:
                raise ValueError(f"feature {member!r} is in two feature groups, {owner[member]!r} "
                                 f"and {group!r}; a feature belongs to one group at most")
            owner[member] = group
        result[group] = [index[m] for m in members]
    return result


def _feature_hint(value: Any, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(value), names, n=3, cutoff=0.6)
    more = f" and {len(names) - 20} more" if len(names) > 20 else ""
    return ((f"did you mean {' or '.join(map(repr, close))}? " if close else "")
            + f"feature names: {', '.join(map(repr, names[:20]))}{more}")


def available_device(device: Any) -> Any:
    """``device`` (a str or ``torch.device``; ``None`` kept) as a ``torch.device`` this machine
    has, else ``ValueError`` naming it and the devices there are."""
    import torch

    if device is None:
        return None
    try:
        device = torch.device(device)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError, TypeError) as error:
        found = ["cpu", *(f"cuda:{i}" for i in range(torch.cuda.device_count())),
                 *(["mps"] if torch.backends.mps.is_available() else [])]
        reason = str(error).strip().splitlines()[0]
        raise ValueError(f"device {str(device)!r} is not available here ({reason}); this "
                         f"machine has: {', '.join(found)}") from None
    return device
