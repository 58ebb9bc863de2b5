"""`explain report` on tiny models: flags, configuration files and bad input."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

import explain
from explain.cli import main
from explain.cli.report import read_config
from explain.report import build_report


@pytest.fixture
def text_setup(tmp_path, tiny_bert):
    model_dir = explain.save_model(tiny_bert, tmp_path / "tiny-bert")
    data = pd.DataFrame({
        "text": ["a good film", "a bad film <script>alert(1)</script>", "dull and slow",
                 "warm and funny", "fine", "a total mess", "great acting", "boring plot"],
        "label": ["pos", "neg", "neg", "pos", "pos", "neg", "pos", "neg"],
        "group": ["a", "a", "b", "b", "a", "b", "a", "b"],
    })
    data_file = tmp_path / "data.csv"
    data.to_csv(data_file, index=False)
    return model_dir, data_file


def _run(argv, capsys):
    code = main(["report", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_flags_build_a_report_with_skip_reasons(tmp_path, text_setup, capsys):
    model_dir, data_file = text_setup
    out = tmp_path / "reports"
    argv = ["--model", str(model_dir), "--data", str(data_file), "--label", "label",
            "--name", "tiny", "--out", str(out / "tiny"), "--n-examples", "8", "--quiet",
            "--analyses", "predictions,attention,fairness", "--format", "svg"]
    code, stdout, stderr = _run(argv, capsys)
    assert code == 0, stderr
    assert re.fullmatch(r"explain report: wrote .*tiny/index\.html \(predictions \d+, "
                        r"attention \d+; \d+ s\)\n", stdout)
    assert stderr == ""  # --quiet: no progress bars
    page = (out / "tiny" / "index.html").read_text()
    assert "group metrics need a sensitive column (--sensitive)" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)</script>" not in page
    manifest = json.loads((out / "tiny" / "manifest.json").read_text())
    assert manifest["config"]["n_examples"] == 8 and manifest["config"]["label"] == "label"
    assert {"tiny-bert.attention", "tiny-bert.predictions"} <= set(
        manifest["run"]["timings_seconds"])
    pngs = sorted(p.stem for p in (out / "tiny" / "figures").glob("*.png"))
    assert pngs and pngs == sorted(p.stem for p in (out / "tiny" / "figures").glob("*.svg"))
    selected = pd.read_csv(out / "tiny" / "data" / "predictions-tiny-bert-selected-examples.csv")
    assert len(selected) == 8 and selected["row"].is_unique

    # an existing report is kept, and the check happens before any analysis runs
    code, _, stderr = _run(argv, capsys)
    assert code == 1 and "already exists; pass --overwrite" in stderr
    code, _, stderr = _run([*argv, "--overwrite"], capsys)
    assert code == 0, stderr


def test_progress_goes_to_stderr(tmp_path, text_setup, capsys):
    model_dir, data_file = text_setup
    code, stdout, stderr = _run(["--model", str(model_dir), "--data", str(data_file),
                                 "--out", str(tmp_path / "reports"), "--analyses",
                                 "predictions"], capsys)
    assert code == 0
    assert "tiny-bert" in stderr and "stage" in stderr
    assert stdout.startswith("explain report: wrote")


def test_config_file_and_flag_override(tmp_path, text_setup, capsys):
    model_dir, data_file = text_setup
    config = tmp_path / "report.toml"
    config.write_text(f'model = "{model_dir}"\ndata = "{data_file}"\nlabel = "label"\n'
                      f'sensitive = ["group"]\nname = "from-config"\n'
                      f'out = "{tmp_path / "from-config"}"\n'
                      'n_examples = 2\nanalyses = ["predictions", "fairness"]\nquiet = true\n')
    # the untrained tiny model scores every row about 0.5: the audit says so
    with pytest.warns(explain.ExplainWarning, match="gives every row the same decision"):
        code, _, stderr = _run(["--config", str(config), "--name", "flag-wins", "--out",
                                str(tmp_path / "flag-wins")], capsys)
    assert code == 0, stderr
    assert (tmp_path / "flag-wins" / "index.html").is_file()
    assert not (tmp_path / "from-config").exists()
    manifest = json.loads((tmp_path / "flag-wins" / "manifest.json").read_text())
    assert manifest["config"]["sensitive"] == ["group"]
    assert any(a["section"] == "fairness" and a["kind"] == "result"
               for a in manifest["analyses"])
    # the analyses' warnings are in the report too, not only on the terminal
    page = (tmp_path / "flag-wins" / "index.html").read_text()
    caveats = re.search(r"<section id='section-caveats'.*?</section>", page, re.S).group(0)
    assert "Warnings raised by the analyses of tiny-bert" in caveats
    assert "gives every row the same decision" in caveats


def test_unknown_config_key_suggests_close_matches(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text('n_exmples = 3\n')
    with pytest.raises(ValueError, match="unknown key 'n_exmples'.*did you mean 'n_examples'"):
        read_config(config)
    code, _, stderr = _run(["--config", str(config)], capsys)
    assert code == 1 and "did you mean 'n_examples'" in stderr
    config.write_text('colour = "red"\n')
    with pytest.raises(ValueError, match="valid keys: model, data"):
        read_config(config)
    config.write_text('n_examples = "three"\n')
    with pytest.raises(ValueError, match="'n_examples' .* must be a int, got 'three'"):
        read_config(config)
    config.write_text('n_examples = \n')
    with pytest.raises(ValueError, match="is not valid TOML"):
        read_config(config)


def test_missing_column_and_empty_data(tmp_path, text_setup, capsys):
    model_dir, data_file = text_setup
    out = tmp_path / "reports"  # the default name is the model's: keep away from it
    code, _, stderr = _run(["--model", str(model_dir), "--data", str(data_file), "--label",
                            "lable", "--out", str(out), "--quiet"], capsys)
    assert code == 1
    assert "the label column 'lable' is not in the data; did you mean 'label'" in stderr
    assert not out.exists()
    empty = tmp_path / "empty.csv"
    empty.write_text("text,label\n")
    code, _, stderr = _run(["--model", str(model_dir), "--data", str(empty), "--out",
                            str(out), "--quiet"], capsys)
    assert code == 1 and "is empty: there is nothing to analyse" in stderr
    code, _, stderr = _run(["--model", str(model_dir), "--data", "rotten_tomatos", "--out",
                            str(out), "--quiet"], capsys)
    assert code == 1 and "did you mean 'rotten_tomatoes'" in stderr
    code, _, stderr = _run(["--data", str(data_file)], capsys)
    assert code == 1 and "--data need --model" in stderr


def test_out_is_the_report_directory(tmp_path, text_setup, capsys):
    model_dir, data_file = text_setup
    argv = ["--model", str(model_dir), "--data", str(data_file), "--quiet", "--analyses",
            "predictions"]
    assert _run([*argv, "--out", str(tmp_path / "audit-2026")], capsys)[0] == 0
    assert sorted(p.name for p in (tmp_path / "audit-2026").iterdir()) == [
        ".explain-output.json", "data", "figures", "index.html", "manifest.json"]
    manifest = json.loads((tmp_path / "audit-2026" / "manifest.json").read_text())
    assert manifest["report"]["name"] == "audit-2026"  # the directory's name, without --name
    code, _, stderr = _run([*argv, "--out", str(tmp_path / "audit-2026")], capsys)
    assert code == 1 and "already exists; pass --overwrite" in stderr
    with pytest.raises(ValueError, match="is not a directory name"):
        explain.Report(name="x").save(tmp_path, folder="a/b")


def test_unwritable_output_directory(tmp_path, text_setup, capsys):
    model_dir, data_file = text_setup
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, stderr = _run(["--model", str(model_dir), "--data", str(data_file), "--out",
                            str(blocker / "report"), "--quiet", "--analyses", "predictions"],
                           capsys)
    assert code == 1 and "is a file" in stderr


def test_analyses_that_do_not_apply_are_skipped_with_reasons(tmp_path, tiny_mlm, tiny_mlp):
    texts = pd.DataFrame({"text": ["the film was good", "the plot was dull"]})
    report = build_report(tiny_mlm, texts, name="mlm", quiet=True,
                          analyses=("predictions", "attention", "fairness"))
    path = report.save(tmp_path)
    page = (path / "index.html").read_text()
    assert "predictions apply to classifiers; this is a &#39;masked-lm&#39; model" in page
    assert "group metrics need a sensitive column" in page
    manifest = json.loads((path / "manifest.json").read_text())
    assert "attention" not in manifest["skipped"]
    assert manifest["skipped"]["predictions"].startswith("tiny-mlm") or \
        "masked-lm" in manifest["skipped"]["predictions"]

    table = pd.DataFrame({f"x{i}": [0.1 * i, -0.2, 0.3] for i in range(5)})
    report = build_report(tiny_mlp, table, name="mlp", quiet=True,
                          analyses=("predictions", "attention"))
    page = (report.save(tmp_path) / "index.html").read_text()
    assert "has no attention over words" in page
    with pytest.raises(ValueError, match="unknown analysis 'atention'; valid: predictions"):
        build_report(tiny_mlp, table, analyses=("atention",))


def test_no_arguments_builds_the_demo(tmp_path, monkeypatch, capsys):
    import explain.cli._demo as demo

    calls = []

    def fake_demo(**kwargs):  # the real demo runs in test_report_demo (slow)
        calls.append(kwargs)
        report = explain.Report(name=kwargs["name"], seed=kwargs["seed"])
        report.add("demo stand-in", section="summary")
        return report

    monkeypatch.setattr(demo, "build_demo", fake_demo)
    code, stdout, stderr = _run(["--out", str(tmp_path / "demo")], capsys)
    assert code == 0, stderr
    assert calls == [{"name": "demo", "n_examples": 6, "seed": 0, "quiet": False,
                      "config": calls[0]["config"]}]
    assert (tmp_path / "demo" / "index.html").is_file()
    assert stdout.startswith(f"explain report: wrote {tmp_path / 'demo' / 'index.html'}")


def _tree(root):
    files = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if path.name == "index.html":
            data = re.sub(rb"<time>[^<]*</time>", b"", data)
        if path.name == "manifest.json":
            manifest = json.loads(data)
            manifest.pop("run")
            data = json.dumps(manifest, sort_keys=True).encode()
        files[str(path.relative_to(root))] = data
    return files


def test_every_analysis_reruns_to_identical_files(tmp_path, text_setup, capsys):
    model_dir, data_file = text_setup
    argv = ["--model", str(model_dir), "--data", str(data_file), "--label", "label",
            "--sensitive", "group", "--name", "again", "--n-examples", "3", "--quiet"]
    with pytest.warns(explain.ExplainWarning):
        assert _run([*argv, "--out", str(tmp_path / "a" / "again")], capsys)[0] == 0
        assert _run([*argv, "--out", str(tmp_path / "b" / "again")], capsys)[0] == 0
    first, second = _tree(tmp_path / "a" / "again"), _tree(tmp_path / "b" / "again")
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []
    manifest = json.loads((tmp_path / "a" / "again" / "manifest.json").read_text())
    assert {a.get("type") for a in manifest["analyses"]} >= {
        "PredictionResult", "AttentionResult", "AttributionResult", "AuditResult",
        "CounterfactualResult", "AssociationResult"}
