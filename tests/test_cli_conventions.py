"""One convention for every subcommand: ``--out DIR`` is the directory it writes, ``--overwrite``
replaces only what explain wrote, ``--format`` the figures, ``--table-format`` the tables,
``--quiet``, ``--text-column``."""

from __future__ import annotations

import argparse

import pytest

import explain
from explain.cli import SUBCOMMANDS, build_parser, main


def _options(name: str) -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command = sub.choices[name]
    found = {s for a in command._actions for s in a.option_strings}
    for action in command._actions:  # probe's analyses are sub-subcommands
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found |= {s for a in child._actions for s in a.option_strings}
    return found


@pytest.mark.parametrize("name", [n for n in SUBCOMMANDS if n != "models"])
def test_every_writing_subcommand_has_the_same_output_flags(name):
    options = _options(name)
    assert {"--out", "--overwrite", "--quiet"} <= options, name
    if name in ("attention", "attribute", "audit", "probe", "report"):
        assert "--format" in options, name
    if name in ("attention", "attribute"):
        assert "--table-format" in options, name


@pytest.mark.parametrize("name", ["audit", "probe", "attribute", "report", "run"])
def test_the_column_of_texts_is_text_column(name):
    assert "--text-column" in _options(name)


def test_attention_writes_its_own_directory_and_replaces_only_its_own(tiny_bert, tmp_path,
                                                                        capsys):
    checkpoint = explain.save_model(tiny_bert, tmp_path / "tiny-bert")
    out = tmp_path / "views"
    out.mkdir()
    (out / "mine.txt").write_text("the user's")
    argv = ["attention", str(checkpoint), "a charming film", "--out", str(out), "--quiet"]
    assert main(argv) == 1
    assert "already exists; pass overwrite=True (--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 1  # other files: never replaced
    assert "explain did not write" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    (out / "mine.txt").unlink()
    assert main(argv) == 0  # an empty directory counts as absent
    first = sorted(p.name for p in out.iterdir())
    assert main([*argv[:2], "another text", *argv[3:], "--overwrite", "--format", "svg"]) == 0
    second = sorted(p.name for p in out.iterdir())
    assert "text0_head.svg" in second and "text0_head.png" not in second  # replaced as a whole
    assert "text0_head.png" in first
