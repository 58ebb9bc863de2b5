"""Atomic directory writes: build a directory beside its target, then put it in place.

    with staged_directory(Path("reports/demo"), overwrite=True) as staging:
        (staging / "index.html").write_text(page)
    # reports/demo/ is now the complete new directory; on an exception it is untouched

``Report.save``, ``Result.export``, ``save_model`` and the CLI write through this, so:

* a failure (or a kill) never leaves a half-written directory at the target: the new directory
  is built in a hidden staging directory beside it (``.NAME.tmp-PID-XXXX``) and put in place
  with one rename;
* an existing target is replaced (``overwrite=True``) only if ``explain`` wrote it: a directory
  is recognised by the list of files it holds (``.explain-output.json``, written in every
  staged directory) and is refused when any other file is in it (the user's own, say), when it
  is not explain's (no list), or when it is the working directory or one above it; an empty
  directory counts as absent;
* the replacement is crash-safe: on Linux the old and new directories swap places in one
  ``renameat2(RENAME_EXCHANGE)`` call, so at every moment the target is either the complete
  old directory or the complete new one (elsewhere: two renames, with a moment in between
  when the old directory is in ``.NAME.old-PID-XXXX``);
* staging and old directories left by a killed process (their PID is no longer running) are
  removed the next time the same target is written.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["MARKER", "check_target", "explain_files", "staged_directory"]

#: The file, in every directory ``staged_directory`` writes, that lists the directory's files.
MARKER = ".explain-output.json"

_STAGING = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)-[^/]+$")


_LEGACY_REPORT = re.compile(r"^(index\.html|manifest\.json|(figures|data)/[^/]+)$")


def _legacy_report_files(directory: Path) -> list[str] | None:
    """The files of a report written before ``MARKER`` existed (recognised by its manifest:
    ``versions`` and ``datasets`` keys), as the report layout names them."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (isinstance(manifest, dict) and {"versions", "datasets"} <= manifest.keys()):
        return None
    return [f for f in _listing(directory) if _LEGACY_REPORT.match(f)]


def explain_files(directory: Path) -> list[str] | None:
    """The files ``explain`` wrote into ``directory`` (relative POSIX paths), read from its
    ``MARKER`` (or, for a report written before it existed, from the report layout); ``None``
    if explain did not write it."""
    try:
        recorded = json.loads((directory / MARKER).read_text(encoding="utf-8"))
        files = recorded["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return _legacy_report_files(directory)
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return files


def _listing(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*")
                  if not p.is_dir())


def _check_replaceable(target: Path, what: str) -> None:
    """Refuse to replace a directory ``explain`` did not write, or one with other files in it."""
    if not target.is_dir():
        raise FileExistsError(f"{what} output {str(target)!r} exists and is a file, not a "
                              f"directory explain wrote; choose another name")
    here = Path.cwd().resolve()
    resolved = target.resolve()
    if resolved == here or resolved in here.parents:
        raise ValueError(f"refusing to replace {str(target)!r}: it is the working directory or "
                         f"one above it; pass a new directory (e.g. --out {what.split()[0]}-out)")
    present = _listing(target)
    if not present:
        return  # an empty directory: nothing to lose
    written = explain_files(target)
    if written is None:
        raise FileExistsError(f"refusing to replace {str(target)!r}: explain did not write it "
                              f"(it has no {MARKER} listing its files); move it away yourself "
                              f"or choose another name")
    foreign = sorted(set(present) - set(written) - {MARKER})
    if foreign:
        shown = ", ".join(repr(f) for f in foreign[:3]) + (" ..." if len(foreign) > 3 else "")
        raise FileExistsError(f"refusing to replace {str(target)!r}: it holds {len(foreign)} "
                              f"file(s) explain did not write ({shown}); move them away or "
                              f"choose another name")


def _pid_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _remove_stale(parent: Path, name: str) -> None:
    """Remove staging/old directories of ``name`` whose writing process is gone (killed)."""
    with contextlib.suppress(OSError):
        for entry in parent.iterdir():
            match = _STAGING.match(entry.name)
            if match and match["name"] == name and not _pid_running(int(match["pid"])):
                shutil.rmtree(entry, ignore_errors=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories atomically (Linux ``renameat2``); False where that is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    error = ctypes.get_errno()
    if error in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: the filesystem cannot swap
        return False
    raise OSError(error, os.strerror(error), str(b))


def _private_dir(parent: Path, name: str, kind: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f".{name}.{kind}-{os.getpid()}-", dir=parent))


def check_target(target: str | os.PathLike, *, overwrite: bool, what: str = "directory"
                 ) -> bool:
    """Whether ``target`` exists; raises if ``staged_directory`` could not put a new directory
    there (it exists and is not empty, without ``overwrite``; or it may not be replaced: see the
    module docstring). Call it before a long computation to fail early."""
    target = Path(target).expanduser().absolute()
    if not target.exists():
        return False
    if not overwrite and (not target.is_dir() or _listing(target)):
        raise FileExistsError(f"{what} {str(target)!r} already exists; pass overwrite=True "
                              f"(--overwrite on the command line) to replace it, or choose "
                              f"another name")
    _check_replaceable(target, what)
    return True


@contextlib.contextmanager
def staged_directory(target: str | os.PathLike, *, overwrite: bool,
                     what: str = "directory") -> Iterator[Path]:
    """Yield an empty hidden staging directory beside ``target``; on normal exit it replaces
    ``target``.

    ``overwrite``: replace an existing ``target`` that explain wrote (see the module docstring:
    never a directory with other files, never the working directory); without it an existing
    non-empty ``target`` is a ``FileExistsError``. On an exception the staging directory is
    removed and ``target`` is left as it was. ``what``: what the directory is, for error
    messages (e.g. ``"report"``).
    """
    target = Path(target).expanduser().absolute()
    parent = target.parent
    if parent.exists() and not parent.is_dir():
        raise NotADirectoryError(f"{what} output directory {str(parent)!r} is a file; pass "
                                 f"a directory")

    check_target(target, overwrite=overwrite, what=what)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(parent, target.name)
        staging = _private_dir(parent, target.name, "tmp")
    except PermissionError:
        raise PermissionError(f"cannot write the {what}: no permission to create files in "
                              f"{str(parent.resolve())!r}; pass a writable directory "
                              f"(--out DIR on the command line)") from None
    try:
        yield staging
        (staging / MARKER).write_text(
            json.dumps({"written_by": "explain", "what": what, "files": _listing(staging)},
                       indent=1) + "\n", encoding="utf-8")
        os.chmod(staging, 0o755)  # mkdtemp makes it private; the result is an ordinary directory
        if check_target(target, overwrite=overwrite, what=what):  # again: it may have changed
            if _exchange(staging, target):
                shutil.rmtree(staging, ignore_errors=True)  # now holds the old directory
                return
            trash = _private_dir(parent, target.name, "old")
            target.rename(trash / "old")
            staging.rename(target)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            if target.exists():  # an empty directory
                target.rmdir()
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
