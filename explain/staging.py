"""Atomic directory writes: build a directory beside its target, then put it in place.

    with staged_directory(Path("reports/demo"), overwrite=True) as staging:
        (staging / "index.html").write_text(page)
    # reports/demo/ is now the complete new directory; on an exception it is untouched

``Report.save`` and ``Result.export`` write through this, so a failure never leaves a
half-written directory and an existing one is replaced only once the new one is complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["staged_directory"]


@contextlib.contextmanager
def staged_directory(target: str | os.PathLike, *, overwrite: bool,
                     what: str = "directory") -> Iterator[Path]:
    """Yield an empty hidden staging directory beside ``target``; on normal exit it replaces
    ``target``.

    ``overwrite``: replace an existing ``target`` (the old one is removed only once the new one
    is complete); without it an existing ``target`` is a ``FileExistsError``. On an exception
    the staging directory is removed and ``target`` is left as it was. ``what``: what the
    directory is, for error messages (e.g. ``"report"``).
    """
    target = Path(target).expanduser()
    parent = target.parent
    if parent.exists() and not parent.is_dir():
        raise NotADirectoryError(f"{what} output directory {str(parent)!r} is a file; pass "
                                 f"a directory")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{what} {str(target)!r} already exists; pass overwrite=True "
                              f"(--overwrite on the command line) to replace it, or choose "
                              f"another name")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
    except PermissionError:
        raise PermissionError(f"cannot write the {what}: no permission to create files in "
                              f"{str(parent.resolve())!r}; pass a writable directory "
                              f"(--out DIR on the command line)") from None
    try:
        yield staging
        os.chmod(staging, 0o755)  # mkdtemp makes it private; the result is an ordinary directory
        if target.exists():
            if not overwrite:  # appeared while we were writing
                raise FileExistsError(f"{what} {str(target)!r} appeared while writing; pass "
                                      f"overwrite=True to replace it")
            trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=parent))
            target.rename(trash / "old")
            staging.rename(target)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
