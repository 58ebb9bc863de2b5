"""What a report says to its reader: no developer text, numbers counting from 1, every sensitive
feature, examples of every predicted class, the attention view opening on a head, progress by
default. Built on the tiny random models (seconds), not the reference models."""

from __future__ import annotations

import ast
import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import explain
from explain.report import build_report, select_examples

EXPLAIN = Path(explain.__file__).parent
WORDS = ["good", "bad", "dull", "warm", "funny", "slow", "bright", "flat", "kind", "odd"]


def _our_classes() -> set[str]:
    """CamelCase names of the classes defined in the package (a reader never needs them)."""
    names = set()
    for path in EXPLAIN.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and re.fullmatch(r"_?[A-Z][a-z]+[A-Z]\w*",
                                                                 node.name):
                names.add(node.name.lstrip("_"))
    return names


class _ReaderText(HTMLParser):
    """The text a reader reads: everything but scripts, styles, data tables (CSV column names
    are the files' own), the provenance section (the record of how the report was made) and
    the one-line summaries that results write of themselves (``<p class=summary>``: the result
    classes' own wording, also their notebook repr)."""

    SKIP = frozenset({"script", "style", "table"})

    def __init__(self):
        super().__init__()
        self.stack: list[tuple[str, bool]] = []
        self.chunks: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("br", "img", "meta", "link", "input", "hr", "col", "source"):
            return
        attributes = dict(attrs)
        skip = tag in self.SKIP or attributes.get("id") == "provenance" or \
            (tag == "p" and attributes.get("class") == "summary")
        self.stack.append((tag, skip))

    def handle_endtag(self, tag):
        while self.stack:
            name, _ = self.stack.pop()
            if name == tag:
                break

    def handle_data(self, data):
        if not any(skip for _, skip in self.stack) and data.strip():
            self.chunks.append(data.strip())


def _reader_text(page: str) -> list[str]:
    parser = _ReaderText()
    parser.feed(page)
    return parser.chunks


def _text_data(n=24):
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 7)))) for _ in range(n)]
    return pd.DataFrame({"text": texts, "label": rng.choice(["neg", "pos"], n),
                         "g": rng.choice(["a", "b"], n)})


def _table_data(n=80):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(5)})
    return frame.assign(y=rng.choice(["no", "yes"], n), race=rng.choice(["p", "q"], n),
                        sex=rng.choice(["f", "m"], n))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One report of a text classifier (one sensitive feature) and a tabular classifier (two),
    saved; (report, directory)."""
    from explain_models import tiny

    from explain.report.build import finish_sections

    out = tmp_path_factory.mktemp("content")
    report, notes = explain.Report("content"), {}
    build_report(tiny.bert_classifier(), _text_data(), label="label", sensitive="g",
                 n_examples=6, quiet=True, report=report, part="Text", notes=notes,
                 analyses=("predictions", "attention", "attributions", "fairness",
                           "representation"))
    build_report(tiny.tabular_mlp(), _table_data(), label="y", sensitive=["race", "sex"],
                 n_examples=4, quiet=True, report=report, part="Table", notes=notes,
                 analyses=("predictions", "attributions", "fairness"))
    finish_sections(report, notes)
    return report, Path(report.save(out))


_IDENTIFIER_CALL = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\s*(?:=|\()")
_TEMPLATE = re.compile(r"\{\}")
_REPOSITORY = re.compile(r"(?<![\w/.])(?:bench|tests|explain)/")


def test_reader_text_has_no_identifiers_templates_or_repository_paths(saved):
    _, path = saved
    chunks = _reader_text((path / "index.html").read_text(encoding="utf-8"))
    text = "\n".join(chunks)
    assert "Text: selected examples" in text and "Table: global importance" in text
    classes = _our_classes()
    assert {"AttentionResult", "AttributionResult", "LoadedModel"} <= classes
    problems = []
    for chunk in chunks:
        for pattern in (_IDENTIFIER_CALL, _TEMPLATE, _REPOSITORY):
            problems += [(m.group(0), chunk) for m in pattern.finditer(chunk)]
        problems += [(word, chunk) for word in re.findall(r"\b[A-Z]\w+\b", chunk)
                     if word in classes]
    assert problems == []
    # the reader may be pointed at the report's own files
    assert re.search(r"\bdata/[\w.-]+\.csv\b", text)


def test_every_caption_finding_and_skip_reason_is_reader_text(saved):
    """The same check on what the analyses wrote (titles, captions, paragraphs, findings,
    metric notes, skip reasons, caveats), whatever the page does with them."""
    report, _ = saved
    view = report.view()
    texts = [i.title for i in report._items if i.title] + \
        [i.caption for i in report._items if i.caption] + \
        [i.payload for i in report._items if i.kind == "text"] + \
        [f["text"] for f in view.findings] + [m.get("note") or "" for m in view.metrics] + \
        list(view.skipped.values()) + [text for _, text in view.caveats]
    classes = _our_classes()
    for text in texts:
        for pattern in (_IDENTIFIER_CALL, _TEMPLATE, _REPOSITORY):
            assert not pattern.search(text), text
        assert not [w for w in re.findall(r"\b[A-Z]\w+\b", text) if w in classes], text
        assert "see bench" not in text and "pass " not in text, text


def test_examples_count_from_one_and_match_the_selected_examples_table(saved):
    report, path = saved
    selected = pd.read_csv(path / "data" / "predictions-text-selected-examples.csv")
    assert list(selected["example"]) == list(range(1, len(selected) + 1))
    rollout = pd.read_csv(path / "data" / "attention-text-rollout-of-example-1.csv")
    assert (rollout["example"] == 1).all()
    # example 1 of the attention section is the first selected text
    first = selected["text"].iloc[0]
    captions = [i.caption for i in report._items if i.title == "Text: rollout of example 1"]
    assert captions and f"“{first}”" in captions[0]
    page = (path / "index.html").read_text(encoding="utf-8")
    assert "text 0" not in html.unescape(page) and "example 0" not in html.unescape(page)


def test_examples_cover_every_predicted_class():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, 300)
    predicted = np.where(np.arange(300) < 270, 0, 1)  # class 1 is rare and never most confident
    confidence[predicted == 1] *= 0.9
    labels = rng.integers(0, 2, 300)
    chosen = select_examples(confidence, predicted=predicted, labels=labels, n_examples=8)
    classes = predicted[chosen["row"]]
    assert sorted(np.bincount(classes, minlength=2)) == [4, 4]
    # each pick is the best row of its list within the class it takes
    first = chosen.iloc[0]
    assert first["reason"] == "most_confident" and first["row"] == int(np.argmax(confidence))
    second = chosen.iloc[1]
    ones = np.flatnonzero(predicted == 1)
    assert second["reason"] == "least_confident"
    assert second["row"] == int(ones[np.argmin(confidence[ones])])
    # one predicted class only: it is what there is
    assert len(select_examples(confidence, predicted=np.zeros(300, int), n_examples=5)) == 5


def test_selected_examples_caption_counts_the_classes(saved):
    report, path = saved
    selected = pd.read_csv(path / "data" / "predictions-text-selected-examples.csv")
    caption = next(i.caption for i in report._items if i.title == "Text: selected examples")
    for name in ("neg", "pos"):
        assert f"{int((selected['predicted'] == name).sum())} predicted '{name}'" in caption


def test_fairness_shows_every_sensitive_feature_with_calibration_and_thresholds(saved):
    _, path = saved
    figures = {p.name for p in (path / "figures").iterdir()}
    for part, features in (("text", ("g",)), ("table", ("race", "sex", "race-sex"))):
        for feature in features:
            stem = f"fairness-{part}-group-metrics-of-the-model-by-{feature}"
            for kind in ("metrics", "calibration", "thresholds"):
                assert f"{stem}-{kind}.png" in figures, (stem, kind, sorted(figures))
            table = pd.read_csv(path / "data" / f"{stem}.csv")
            assert set(table["sensitive_feature"]) == {feature.replace("-", " & ")}


def test_the_attention_view_opens_on_the_most_focused_head(saved):
    from explain_models import tiny

    from explain.attention import attention
    from explain.attention.view import opening_head

    loaded = tiny.bert_classifier()
    result = attention(loaded, ["a warm film", "a dull slow plot"])
    start = opening_head(result)
    stats = result.head_statistics()
    best = stats.loc[stats["entropy"].idxmin()]
    assert (result.layers[start["layer"]], result.heads[start["head"]]) == \
        (int(best["layer"]), int(best["head"]))
    assert f"layer {int(best['layer'])}, head {int(best['head'])}" in start["why"]
    markup = result.view_html(element_id="v1")
    data = json.loads(re.search(r"id='v1-data'>(.*?)</script>", markup).group(1))
    assert data["start"] == start
    # with head importance: the head whose masking costs most
    weighted = attention(loaded, ["a warm film", "a dull slow plot"], importance=True)
    table = weighted.importance.to_frame()
    top = table.loc[table["importance"].idxmax()]
    start = opening_head(weighted)
    assert (weighted.layers[start["layer"]], weighted.heads[start["head"]]) == \
        (int(top["layer"]), int(top["head"]))
    assert "most important head" in start["why"]
    # the report draws the head the view opens on, and says so
    report, _ = saved
    titles = [i.title for i in report._items if i.title and i.title.startswith("Text: layer")]
    assert len(titles) == 1 and titles[0].endswith("example 1")


def test_global_importance_title_says_what_is_drawn(saved):
    report, _ = saved
    figures = [i.payload for i in report._items if i.kind == "figure"
               and i.title.startswith("Table: global importance")]
    assert len(figures) == 1
    title = " ".join(figures[0]._suptitle.get_text().split())
    assert "top 5 features per predicted class by mean |score|" in title  # 5 features exist
    assert "bars: signed mean score with its 95% Student-t interval" in title


def test_build_report_shows_progress_by_default(capsys):
    from explain_models import tiny

    build_report(tiny.tabular_mlp(), _table_data(20), label="y", analyses=("predictions",))
    assert "predictions" in capsys.readouterr().err
    build_report(tiny.tabular_mlp(), _table_data(20), label="y", analyses=("predictions",),
                 quiet=True)
    assert capsys.readouterr().err == ""
