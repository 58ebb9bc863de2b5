"""The report machinery, tested on small synthetic results (independent of the analyses)."""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd
import pytest
import torch

import explain
from explain.plotting import axes_or_new
from explain.report import PredictionResult, Report, build_report, predict, select_examples
from explain.results import Result

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = "<img src=x onerror=alert(2)>"


class ToyResult(Result):
    """Scores of six features; to_frame columns: feature, score."""

    PLOTS = MappingProxyType({"bars": "score per feature", "sorted": "scores sorted"})

    def __init__(self, seed: int = 0, *, fail: bool = False):
        rng = np.random.default_rng(seed)
        self.values = rng.normal(size=6)
        self.fail = fail
        self.meta = {"method": "toy", "parameters": {"n_features": 6}, "seed": seed,
                     "model": {"name": "toy-model", "weights_sha256": "ab" * 32}}

    def to_frame(self):
        return pd.DataFrame({"feature": [f"f{i} {XSS_IMG}" for i in range(6)],
                             "score": self.values})

    def plot(self, kind=None, *, ax=None):
        kind = self._check_kind(kind)
        if self.fail:
            raise RuntimeError("plot failed on purpose")
        fig, ax = axes_or_new(ax, 4, 2.5)
        values = np.sort(self.values) if kind == "sorted" else self.values
        ax.bar(range(6), values)
        ax.set_title(f"toy {kind}")
        return fig


def _predictions(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return PredictionResult(rng.dirichlet([1, 1], size=n), label_names=["neg", "pos"],
                            labels=rng.integers(0, 2, n), groups=rng.choice(["a", "b", "c"], n))


def _report(name="toy", seed=0) -> Report:
    report = Report(name=name, title=f"Toy report {XSS_SCRIPT}", seed=seed,
                    description=f"About {XSS_IMG}", config={"n_examples": 4})
    predictions = _predictions()
    report.add_metric("accuracy", predictions.accuracy)
    report.add_finding(f"The sentence {XSS_SCRIPT} was classified as pos.")
    report.add(predictions, section="predictions", title="Predictions", plots="all")
    report.add(ToyResult(), section="attributions", title="Importance", caption=XSS_IMG)
    report.add(pd.DataFrame({"word": [XSS_SCRIPT, "b"], "value": [0.125, 1 / 3]}),
               section="attributions", title="A table")
    report.add(pd.DataFrame({"input": ["a long sentence " * 8, XSS_IMG * 9],
                             "score": [0.5, -0.25],
                             "summary": ["a long summary " * 9, "another long summary " * 5]}),
               section="attributions", title="Long texts")
    report.add(f"Plain text {XSS_SCRIPT}", section="attributions")
    report.add_dataset("toy data", pd.DataFrame({"x": [1, 2, 3]}), licence="CC BY 4.0",
                       source="made up")
    report.skip("fairness", "the toy data has no sensitive column")
    return report


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _without_timestamp(name: str, data: bytes) -> bytes:
    if name == "manifest.json":
        manifest = json.loads(data)
        assert set(manifest["run"]) == {"created", "timings_seconds"}
        manifest.pop("run")
        return json.dumps(manifest, sort_keys=True).encode()
    if name == "index.html":
        text = data.decode()
        assert text.count("<time>") == 1
        return re.sub(r"<time>[^<]*</time>", "<time></time>", text).encode()
    return data


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self.scripts += tag == "script"


def test_save_writes_the_layout(tmp_path):
    path = _report().save(tmp_path)
    assert path == tmp_path / "toy"
    names = set(_files(path))
    assert {"index.html", "manifest.json"} <= names
    assert {"figures/predictions-predictions-confusion.png",
            "figures/predictions-predictions-confidence.png",
            "figures/attributions-importance.png"} <= names
    assert {"data/predictions-predictions.csv", "data/attributions-importance.csv",
            "data/attributions-a-table.csv"} <= names
    # no staging directories left behind
    assert [p.name for p in tmp_path.iterdir()] == ["toy"]
    frame = pd.read_csv(path / "data/predictions-predictions.csv")
    assert list(frame.columns) == ["row", "predicted", "predicted_name", "confidence", "label",
                                   "label_name", "correct", "group"]
    assert len(frame) == 60


def test_html_is_self_contained_and_figures_match_files(tmp_path):
    path = _report().save(tmp_path)
    page = (path / "index.html").read_text()
    parser = _Collect()
    parser.feed(page)
    for tag, attrs in parser.tags:
        for key in ("src", "href", "action", "poster", "srcset"):
            value = attrs.get(key)
            if value is not None:
                assert value.startswith(("data:", "#")), (tag, key, value[:80])
    assert not re.search(r"https?://", page.replace("http-equiv", ""))
    assert "url(" not in page and "@import" not in page
    images = [attrs for tag, attrs in parser.tags if tag == "img"]
    assert len(images) == 3
    for attrs in images:
        png = base64.b64decode(attrs["src"].split(",", 1)[1])
        assert png == (path / attrs["data-figure"]).read_bytes()
    assert "@media print" in page


def test_user_text_is_escaped(tmp_path):
    path = _report().save(tmp_path)
    page = (path / "index.html").read_text()
    parser = _Collect()
    parser.feed(page)
    assert parser.scripts == 0  # no view on this page, so no script at all: nothing injected
    assert XSS_SCRIPT not in page and XSS_IMG not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert not [a for t, a in parser.tags if t == "img" and "onerror" in a]


def _figure():
    from explain.plotting import new_figure

    # a legend below the axes: constrained layout moves it again on every draw
    fig, ax = new_figure(6.0, 2.6)
    ax.barh([0, 1, 2], [0.2, 0.1, 0.3], label="method")
    ax.set_yticks([0, 1, 2], ["integrated_gradients", "saliency", "input_x_gradient"])
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    ax.set_title("a figure added as is")
    return fig


def test_same_inputs_give_same_files_apart_from_the_timestamp(tmp_path):
    first = _files(_report().save(tmp_path / "a"))
    second = _files(_report().save(tmp_path / "b"))
    assert first.keys() == second.keys()
    for name in first:
        assert _without_timestamp(name, first[name]) == _without_timestamp(name, second[name]), name
    # one report saved twice (its figures drawn once) gives the same files too
    report = _report()
    report.add(_figure(), section="attention", title="Plain figure")
    third, fourth = (_files(report.save(tmp_path / d)) for d in ("d", "e"))
    assert [n for n in third if _without_timestamp(n, third[n]) !=
            _without_timestamp(n, fourth[n])] == []
    different = _files(_report(seed=1).save(tmp_path / "c"))
    assert _without_timestamp("manifest.json", different["manifest.json"]) != \
        _without_timestamp("manifest.json", first["manifest.json"])


def test_numbers_in_the_html_equal_the_csv(tmp_path):
    path = _report().save(tmp_path)
    page = (path / "index.html").read_text()
    tables = re.findall(r"<table class=data data-source='(data/[^']+)'[^>]*>(.*?)</table>", page,
                        re.S)
    assert len(tables) == 4
    checked = 0
    for source, body in tables:
        frame = pd.read_csv(path / source)
        for row_number, row in re.findall(r"<tr data-row='(\d+)'[^>]*>(.*?)</tr>", body, re.S):
            for column, value in re.findall(r"data-column='([^']+)' data-value='([^']+)'", row):
                assert float(value) == pytest.approx(frame.loc[int(row_number), column], abs=0)
                checked += 1
    assert checked > 50
    # long text columns are stacked under their row, in full, escaped
    long_table = next(body for source, body in tables if "long-texts" in source)
    assert long_table.count("<tr class=detail>") == 4
    assert "<span class=key>summary</span> " + "a long summary " * 8 in long_table
    metric = re.search(r"data-value='([^']+)' data-metric='accuracy'", page).group(1)
    frame = pd.read_csv(path / "data/predictions-predictions.csv")
    assert float(metric) == frame["correct"].mean()


def test_manifest_records_provenance(tmp_path):
    path = _report().save(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["versions"]["python"] and manifest["versions"]["torch"]
    assert manifest["seed"] == 0 and manifest["config"] == {"n_examples": 4}
    assert manifest["models"][0]["name"] == "toy-model"
    assert manifest["models"][0]["provenance"]["weights_sha256"] == "ab" * 32
    assert manifest["datasets"][0]["n_rows"] == 3
    assert len(manifest["datasets"][0]["sha256"]) == 64
    assert manifest["skipped"] == {"fairness": "the toy data has no sensitive column"}
    kinds = {a["id"]: a for a in manifest["analyses"]}
    assert kinds["attributions-importance"]["parameters"] == {"n_features": 6}
    timings = manifest["run"]["timings_seconds"]
    assert {"report.render", "report.draw_figures", "report.encode_png", "report.write_html"} \
        <= set(timings)


def test_existing_report_needs_overwrite(tmp_path):
    _report().save(tmp_path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        _report().save(tmp_path)
    report = Report(name="toy", seed=0)
    report.add("only text", section="summary")
    path = report.save(tmp_path, overwrite=True)
    assert not (path / "figures").exists() or not any((path / "figures").iterdir())
    assert "only text" in (path / "index.html").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy"]


def test_failure_leaves_no_half_report(tmp_path):
    report = _report()
    report.add(ToyResult(fail=True), section="attention", title="Broken")
    with pytest.raises(RuntimeError, match="on purpose") as info:
        report.save(tmp_path)
    assert any("attention-broken" in note for note in info.value.__notes__)
    assert list(tmp_path.iterdir()) == []
    # and an existing report survives a failed overwrite untouched
    good = _report().save(tmp_path)
    before = _files(good)
    with pytest.raises(RuntimeError):
        report.save(tmp_path, overwrite=True)
    assert _files(good) == before
    assert [p.name for p in tmp_path.iterdir()] == ["toy"]


def test_unwritable_directory_gives_a_clear_error(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.geteuid() == 0:  # root ignores permission bits: make the system call refuse
            def refuse(*args, **kwargs):
                raise PermissionError(13, "Permission denied")

            monkeypatch.setattr(tempfile, "mkdtemp", refuse)
        with pytest.raises(PermissionError, match="no permission to create files in"):
            _report().save(locked)
    finally:
        locked.chmod(0o700)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        _report().save(tmp_path / "file")


def test_svg_and_pdf_on_request(tmp_path):
    path = _report().save(tmp_path, formats=("svg", "pdf"))
    names = set(_files(path))
    assert {"figures/attributions-importance.png", "figures/attributions-importance.svg",
            "figures/attributions-importance.pdf"} <= names
    with pytest.raises(ValueError, match="unknown figure format"):
        _report(name="other").save(tmp_path, formats=("jpeg",))


def test_bad_arguments_name_the_fix():
    report = Report(name="x")
    with pytest.raises(ValueError, match="unknown report section 'atention'; valid: summary"):
        report.add("text", section="atention")
    with pytest.raises(ValueError, match="unknown plot kind.*'heat'.*valid: bars, sorted"):
        report.add(ToyResult(), section="attributions", plots="heat")
    with pytest.raises(TypeError, match="got int"):
        report.add(3, section="summary")
    with pytest.raises(ValueError, match="invalid report name"):
        Report(name="../escape")
    with pytest.raises(ValueError, match="needs a reason"):
        report.skip("fairness", " ")
    report.add("text", section="fairness")
    with pytest.raises(ValueError, match="already has content"):
        report.skip("fairness", "why")
    with pytest.raises(ValueError, match="external resource"):
        report.add_html("<img src='https://example.com/x.png'>", section="attention")


def test_sections_skipped_with_reasons_in_the_page(tmp_path):
    page = (_report().save(tmp_path) / "index.html").read_text()
    fairness = re.search(r"<section id='section-fairness'[^>]*>(.*?)</section>", page, re.S)
    assert "data-skipped" in fairness.group(0)
    assert "Skipped because the toy data has no sensitive column." in fairness.group(1)
    attention = re.search(r"<section id='section-attention'[^>]*>(.*?)</section>", page, re.S)
    assert "Skipped because nothing of this kind was added" in attention.group(1)
    caveats = re.search(r"<section id='section-caveats'[^>]*>(.*?)</section>", page, re.S)
    assert "Attributions depend on the method" in caveats.group(1)
    assert "Attention is not explanation" not in caveats.group(1)  # no attention content here
    assert "Licence: CC BY 4.0" in caveats.group(1)


def test_repr_html_is_a_fragment():
    fragment = _report()._repr_html_()
    assert "<html" not in fragment and "<style>" in fragment
    assert "class=explain-report" in fragment
    assert XSS_SCRIPT not in fragment


def test_explain_exports_report():
    assert explain.Report is Report


# ---------------------------------------------------------------------- example selection


def test_select_examples_is_deterministic_bounded_and_covers_reasons():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, 200)
    confidence[10] = confidence[11] = 1.0  # a tie: row order decides
    predicted = rng.integers(0, 2, 200)
    labels = rng.integers(0, 2, 200)
    groups = rng.choice(["x", "y", "z"], 200)
    chosen = select_examples(confidence, predicted=predicted, labels=labels, groups=groups,
                             n_examples=6)
    again = select_examples(confidence, predicted=predicted, labels=labels, groups=groups,
                            n_examples=6)
    pd.testing.assert_frame_equal(chosen, again)
    assert len(chosen) == 6 and chosen["row"].is_unique
    assert list(chosen["reason"]) == ["most_confident", "least_confident", "misclassified",
                                      "group", "group", "group"]
    assert chosen["row"].iloc[0] == 10
    assert chosen["row"].iloc[1] == int(np.argmin(confidence))
    mistake = chosen["row"].iloc[2]
    assert predicted[mistake] != labels[mistake]
    assert list(chosen["group"].iloc[3:]) == ["x", "y", "z"]
    assert select_examples(confidence, n_examples=0).empty
    assert len(select_examples(confidence[:3], n_examples=10)) == 3
    with pytest.raises(ValueError, match="n_examples must be"):
        select_examples(confidence, n_examples=-1)


# ----------------------------------------------------------------------------- predictions


def test_predict_text_model(tiny_bert):
    data = pd.DataFrame({"text": ["a good film", "a bad film", "dull", "warm and funny", "ok"],
                         "label": ["pos", "neg", "neg", "pos", "pos"],
                         "group": ["a", "a", "b", "b", "b"]})
    result = predict(tiny_bert, data, label="label", sensitive="group", batch_size=2)
    whole = predict(tiny_bert, data, label="label", sensitive="group", batch_size=5)
    np.testing.assert_allclose(result.probabilities, whole.probabilities, atol=1e-6)
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-6)
    frame = result.to_frame()
    assert list(frame["label_name"]) == ["pos", "neg", "neg", "pos", "pos"]
    assert result.accuracy == frame["correct"].mean()
    confusion = result.confusion()
    assert confusion["count"].sum() == 5
    assert result.meta["model"]["weights_sha256"] == tiny_bert.provenance["weights_sha256"]
    with pytest.raises(KeyError, match="text column 'txt' is not in the data; did you mean 'text'"):
        predict(tiny_bert, data, text_column="txt")
    with pytest.raises(ValueError, match="the dataset is empty"):
        predict(tiny_bert, data.iloc[:0])
    with pytest.raises(ValueError, match="holds 'maybe'"):
        predict(tiny_bert, data.assign(label="maybe"), label="label")


def test_predict_rejects_models_it_does_not_apply_to(tiny_mlm):
    with pytest.raises(ValueError, match="predictions apply to classifiers"):
        predict(tiny_mlm, pd.DataFrame({"text": ["a"]}))


def test_predict_tabular_model(tiny_mlp):
    rng = np.random.default_rng(0)
    data = pd.DataFrame(rng.normal(size=(20, 5)), columns=[f"x{i}" for i in range(5)])
    data["y"] = rng.integers(0, 2, 20)
    result = predict(tiny_mlp, data, label="y", batch_size=7)
    assert result.probabilities.shape == (20, 2)
    fig = result.plot("confusion")
    assert fig.axes
    with pytest.raises(KeyError, match="feature column 'x4' is not in the data"):
        predict(tiny_mlp, data.drop(columns="x4"))


def test_prediction_result_is_immutable_and_checks_its_options():
    result = _predictions()
    assert result.applicable_plots() == ("confusion", "confidence")
    assert PredictionResult(result.probabilities, label_names=["neg", "pos"]
                            ).applicable_plots() == ("confidence",)
    with pytest.raises(TypeError, match=r"plot\('confidence'\) got unknown option\(s\) 'bins'"):
        result.plot("confidence", bins=5)
    with pytest.raises(AttributeError, match="immutable after construction"):
        result.labels = None
    with pytest.raises(TypeError):
        result.meta["method"] = "other"
    fig, ax = axes_or_new(None, 4, 3)
    assert result.plot("confusion", ax=ax) is fig


def test_staged_directory_replaces_only_when_complete(tmp_path):
    from explain.staging import staged_directory

    target = tmp_path / "out"
    with staged_directory(target, overwrite=False) as staging:
        assert staging.parent == tmp_path and staging.name.startswith(".out.tmp-")
        assert list(staging.iterdir()) == [] and not target.exists()
        (staging / "a.txt").write_text("first")
    assert (target / "a.txt").read_text() == "first"
    with (pytest.raises(FileExistsError, match="already exists; pass overwrite=True"),
          staged_directory(target, overwrite=False)):
        pass
    with (pytest.raises(RuntimeError, match="on purpose"),
          staged_directory(target, overwrite=True) as staging):
        (staging / "a.txt").write_text("second")
        raise RuntimeError("on purpose")
    assert (target / "a.txt").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    with staged_directory(target, overwrite=True) as staging:
        (staging / "b.txt").write_text("second")
    assert sorted(p.name for p in target.iterdir()) == [".explain-output.json", "b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_attention_does_not_apply_to_a_text_model_whose_family_has_no_attention(tiny_bert,
                                                                             tmp_path):
    class BagOfWords(torch.nn.Module):
        def __init__(self, vocabulary: int):
            super().__init__()
            self.embed = torch.nn.Embedding(vocabulary, 8)
            self.out = torch.nn.Linear(8, 2)

        def forward(self, input_ids, attention_mask=None, **_):
            return self.out(self.embed(input_ids).mean(1))

    loaded = explain.load_model(BagOfWords(tiny_bert.tokenizer.vocab_size),
                                tokenizer=tiny_bert.tokenizer, name="bag-of-words",
                                task="sequence-classification", label_names=["a", "b"])
    assert loaded.family.name == "embedding"
    table = pd.DataFrame({"text": ["a good film", "a dull film", "fine", "bad"]})
    path = build_report(loaded, table, quiet=True, analyses=("attention",)).save(tmp_path)
    page = (path / "index.html").read_text()
    assert ("Skipped because bag-of-words: the model has no attention layers (family "
            "&#39;embedding&#39;)." in page)


def test_predict_names_a_feature_column_that_holds_text(tiny_mlp):
    """A model without an encoder reads its feature columns through encode_frame, whose errors
    name the column and the rows (not numpy's 'could not convert string to float')."""
    data = pd.DataFrame({name: [0.0, 1.0] for name in tiny_mlp.feature_names})
    data["x1"] = ["x", 1.0]
    with pytest.raises(ValueError, match=r"numeric column 'x1' holds values that are not "
                                         r"numbers: 'x' \(1 row\)"):
        predict(tiny_mlp, data)
