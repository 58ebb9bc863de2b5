"""The wheel ships what the code reads: every module, the data files, the static view files and
the report's templates; its metadata declares the libraries the default outputs need."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Source directory -> where its files land in the wheel.
SHIPPED = {"explain": "explain", "models": "explain_models"}


def _source_files() -> list[str]:
    """The files of the working tree that git tracks or would track (not those it ignores)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard",
                             "-z"], cwd=ROOT, capture_output=True, text=True, check=True)
    return sorted({name for name in listed.stdout.split("\0") if name and (ROOT / name).is_file()})


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    # built from a copy, so the build's build/ and *.egg-info never land in the source tree
    source = tmp_path_factory.mktemp("source")
    for name in _source_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--no-index", "--quiet", "--wheel-dir", str(out), str(source)],
                   check=True, capture_output=True, text=True)
    (built,) = out.glob("explain-*.whl")
    with zipfile.ZipFile(built) as archive:
        yield archive


def test_the_wheel_has_every_file_of_the_packages(wheel):
    names = set(wheel.namelist())
    expected = [f"{SHIPPED[name.split('/')[0]]}/{name.partition('/')[2]}"
                for name in _source_files() if name.split("/")[0] in SHIPPED
                and (name.endswith(".py") or name.startswith(("explain/data/", "explain/static/",
                                                              "explain/report/templates/")))]
    assert any(name.startswith("explain/report/templates/") for name in expected) == (
        ROOT / "explain" / "report" / "templates").is_dir()
    missing = sorted(set(expected) - names)
    assert not missing, f"not in the wheel (pyproject.toml packages / package-data): {missing}"
    assert not any(name.startswith(("models/", "tests/", "bench/")) for name in names)


def test_the_wheel_declares_what_the_defaults_need(wheel):
    (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    message = Parser().parsestr(wheel.read(metadata).decode())
    required = {line.split(";")[0].replace(" ", "") for line in message.get_all("Requires-Dist")}
    base = {r for r in required if "extra==" not in r}
    by_name = {r.split(">")[0].split("=")[0].split("<")[0].lower(): r for r in base}
    for name in ("torch", "transformers", "captum", "pandas", "pyarrow", "jinja2", "matplotlib"):
        assert name in by_name, f"{name} is not a dependency"
        assert "<" not in by_name[name] and "==" not in by_name[name], by_name[name]
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    assert "explain = explain.cli:console_main" in wheel.read(entry_points).decode()
