"""The CLI skeleton: every subcommand is listed, and the console script is installed."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from explain.cli import SUBCOMMANDS, main


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


def test_no_subcommand_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_unknown_subcommand_is_refused(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["explode"])
    assert stop.value.code == 2
    assert "invalid choice: 'explode'" in capsys.readouterr().err


def test_console_script_and_module_entry_point():
    script = shutil.which("explain") or str(__import__("pathlib").Path(sys.executable).with_name("explain"))
    out = subprocess.run([script, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("explain ")
    out = subprocess.run([sys.executable, "-m", "explain", "--help"], capture_output=True,
                         text=True, check=True)
    assert "usage: explain" in out.stdout


def test_explain_warnings_print_as_one_plain_line(capsys):
    import io

    from explain import ExplainWarning
    from explain.cli import _show_warning

    stream = io.StringIO()
    _show_warning(ExplainWarning("groups too small"), ExplainWarning, "x.py", 3, file=stream)
    assert stream.getvalue() == "explain: warning: groups too small\n"
    _show_warning(UserWarning("other"), UserWarning, "x.py", 3, file=stream)
    assert "x.py:3: UserWarning: other" in stream.getvalue()


@pytest.mark.parametrize("definition", ["aopc", "eraser"])
def test_attribute_names_the_faithfulness_definition_it_used(tiny_bert, tmp_path, definition):
    import pandas as pd

    import explain

    checkpoint = explain.save_model(tiny_bert, tmp_path / "bert")
    (tmp_path / "texts.txt").write_text("a warm story\nthe plot was dull and slow\n")
    out = tmp_path / "out"
    assert main(["attribute", str(checkpoint), "--data", str(tmp_path / "texts.txt"),
                 "--out", str(out), "--n-steps", "4", "--table-format", "csv",
                 "--faithfulness", definition]) == 0
    table = pd.read_csv(out / "explanations.csv")
    assert set(table.faithfulness_definition) == {definition}
    assert table.comprehensiveness.notna().all()


def test_text_commands_refuse_an_empty_text_cell(tiny_bert, tmp_path, capsys):
    import explain

    checkpoint = explain.save_model(tiny_bert, tmp_path / "bert")
    (tmp_path / "texts.csv").write_text('text,group\n"a warm story",a\n,b\n"dull",a\n')
    for command in (["attribute", str(checkpoint), "--data", str(tmp_path / "texts.csv"),
                     "--out", str(tmp_path / "attr")],
                    ["probe", "counterfactual", str(checkpoint), "--data",
                     str(tmp_path / "texts.csv"), "--text-column", "text", "--swaps", "gender",
                     "--out", str(tmp_path / "cf")],
                    ["probe", "representation", str(checkpoint), "--data",
                     str(tmp_path / "texts.csv"), "--text", "text", "--attribute", "group",
                     "--out", str(tmp_path / "rep")]):
        assert main(command) == 1
        assert "the text column 'text' is empty or missing in 1 row(s)" in capsys.readouterr().err
    assert not any(p.name in {"attr", "cf", "rep"} for p in tmp_path.iterdir())


def test_resolve_model_takes_reference_names_paths_and_loaded_models(tiny_bert, tmp_path):
    import explain
    from explain.cli._resolve import reference_names, resolve_model

    assert reference_names() == ("sentiment", "compas", "adult", "digits", "lm", "mlm", "seq2seq",
                                 "vit", "imagenet")
    digits = resolve_model("digits")
    assert isinstance(digits, explain.LoadedModel) and digits.task == "image-classification"
    assert resolve_model(digits) is digits
    checkpoint = explain.save_model(tiny_bert, tmp_path / "bert")
    assert resolve_model(str(checkpoint)).task == tiny_bert.task


def test_resolve_model_lists_the_reference_names_for_an_unknown_name():
    from explain.cli._resolve import resolve_model

    with pytest.raises(OSError, match=r"did you mean 'sentiment'\? reference models: "
                                      r"sentiment, compas, adult, digits, lm, mlm, seq2seq, vit, "
                                      r"imagenet, minilm$"):
        resolve_model("sentimnt")
    with pytest.raises(FileNotFoundError, match="no such checkpoint directory.*reference models"):
        resolve_model("./nowhere")


def test_attribute_writes_what_the_result_says_applies(tiny_mlp, tmp_path, capsys):
    import numpy as np
    import pandas as pd

    import explain

    checkpoint = explain.save_model(tiny_mlp, tmp_path / "mlp")
    data = pd.DataFrame(np.random.default_rng(0).standard_normal((4, 5)),
                        columns=[f"x{i}" for i in range(5)])
    data.to_csv(tmp_path / "rows.csv", index=False)
    out = tmp_path / "skip"
    assert main(["attribute", str(checkpoint), "--data", str(tmp_path / "rows.csv"),
                 "--out", str(out), "--table-format", "csv", "--n-steps", "4",
                 "--no-faithfulness"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        ".explain-output.json", "bar.png", "explanations.csv", "global.png", "global_importance.csv", "scores.csv",
        "waterfall.png"]
    out = tmp_path / "layer"
    assert main(["attribute", str(checkpoint), "--data", str(tmp_path / "rows.csv"),
                 "--out", str(out), "--table-format", "csv", "--n-steps", "4",
                 "--method", "layer"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [".explain-output.json", "layer.png",
                                                     "scores.csv"]
    assert set(pd.read_csv(out / "scores.csv").columns) >= {"input_id", "layer", "neuron"}
    assert "wrote 2 files" in capsys.readouterr().out
    assert main(["attribute", str(checkpoint), "--data", str(tmp_path / "rows.csv"),
                 "--out", str(tmp_path / "bad"), "--method", "salency"]) == 1
    assert "unknown method 'salency'; did you mean 'saliency'?" in capsys.readouterr().err
