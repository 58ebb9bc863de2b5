"""A fast command line: ``explain --help``, ``--version`` and a subcommand's ``--help`` import
none of the heavy libraries (the package face imports on first use, and only the subcommand
named on the command line builds its arguments); a name that is neither a path nor a reference
model says which reference models exist before the Hub is tried."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import explain
from explain.cli import SUBCOMMANDS

HEAVY = ("torch", "pandas", "matplotlib", "transformers", "captum")

#: Run in a fresh interpreter: the CLI's main on ARGV, then the heavy libraries it imported.
_MAIN = """
import json, sys
from explain.cli import main
try:
    main(json.loads(sys.argv[1]))
except SystemExit:
    pass
print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(json.loads(sys.argv[2])))))
"""

def _imported_by(argv: list[str]) -> list[str]:
    done = subprocess.run([sys.executable, "-c", _MAIN, json.dumps(argv), json.dumps(HEAVY)],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip(), done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [
    ["--help"], ["--version"], [],
    *[[name, "--help"] for name in SUBCOMMANDS],
], ids=" ".join)
def test_help_and_version_import_no_heavy_library(argv):
    assert _imported_by(argv) == []


_FACE = """
import json, sys, types
heavy = json.loads(sys.argv[1])
import explain
assert not {m.split('.')[0] for m in sys.modules} & set(heavy), 'import explain'
import explain.run.store                      # the subpackage first: explain.run stays the function
assert callable(explain.run) and explain.run.__name__ == 'run', explain.run
from explain.run import RunConfig, store      # the subpackage's own names
import explain.attention.graph                # the same for explain.attention
assert callable(explain.attention) and explain.attention.__name__ == 'attention'
for name in explain.__all__:
    exec(f'from explain import {name}')
    assert getattr(explain, name) is not None
assert callable(explain.run) and callable(explain.attention), (explain.run, explain.attention)
assert isinstance(explain.datasets, types.ModuleType)  # any submodule, as an attribute
assert set(explain.__all__) <= set(dir(explain))
try:
    explain.no_such_name
except AttributeError as error:
    assert "no_such_name" in str(error)
else:
    raise SystemExit('explain.no_such_name did not raise')
print('ok')
"""


def test_the_package_face_imports_on_first_use_and_keeps_every_name():
    done = subprocess.run([sys.executable, "-c", _FACE, json.dumps(HEAVY)], capture_output=True,
                          text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_the_face_gives_the_same_objects_as_their_modules():
    from explain.attribution import attribute
    from explain.fairness import audit
    from explain.loading import load_model
    from explain.run import run

    assert explain.attribute is attribute and explain.audit is audit
    assert explain.load_model is load_model and explain.run is run


def test_a_hub_name_lists_the_reference_models_before_the_hub_is_tried(monkeypatch, capsys):
    from explain import loading
    from explain.cli._resolve import resolve_model

    said = []

    def hub(hub_id, **options):
        said.append(capsys.readouterr().err)  # what stderr held when the Hub was tried
        raise OSError(f"could not fetch {hub_id!r} from the Hugging Face Hub")

    monkeypatch.setattr(loading, "_from_hub", hub)
    with pytest.raises(OSError, match="could not fetch 'org/some-model'"):
        resolve_model("org/some-model")
    assert len(said) == 1
    assert said[0] == ("explain: 'org/some-model' is no local directory and no reference model "
                       "(sentiment, compas, adult, digits, lm, mlm, seq2seq, vit, imagenet, "
                       "minilm); trying it as a Hugging Face Hub id\n")


def test_a_path_that_does_not_exist_never_mentions_the_hub(tmp_path, capsys):
    from explain.cli._resolve import resolve_model

    with pytest.raises(FileNotFoundError, match="no such checkpoint directory"):
        resolve_model(str(tmp_path / "nowhere"))
    assert "Hub" not in capsys.readouterr().err


def test_the_cli_names_the_registries_built_ins():
    """The choices the CLI lists without importing torch are the registries' built-ins."""
    from explain.attribution import FAITHFULNESS_DEFINITIONS
    from explain.attribution.methods import _BUILT_IN
    from explain.cli import attribute, probe, run
    from explain.fairness import POOLINGS, TESTS
    from explain.fairness.association import P_VALUES
    from explain.run import ENGINES, RUN_ANALYSES

    assert tuple(spec.name for spec in _BUILT_IN) == attribute.METHOD_NAMES
    assert tuple(FAITHFULNESS_DEFINITIONS) == attribute.FAITHFULNESS_NAMES
    # the built-ins are registered first (tests may register more after them)
    assert tuple(RUN_ANALYSES)[:len(run.ANALYSIS_NAMES)] == run.ANALYSIS_NAMES
    assert tuple(ENGINES) == run.ENGINE_NAMES
    assert tuple(probe.P_VALUE_RULES) == tuple(P_VALUES)
    assert tuple(POOLINGS) == probe.POOLING_NAMES and tuple(TESTS) == probe.TEST_NAMES
