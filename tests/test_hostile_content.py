"""Any value is text everywhere: the user's words never stop a report (the offline check reads
our markup, not their text), are never typeset as mathematics in a figure, and never run as a
spreadsheet formula from a CSV we write."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import explain
from explain import Report
from explain.report.offline import check_offline
from explain.results import csv_safe, write_csv

#: Ordinary review sentences that mention what an external reference looks like.
MENTIONS = ["The sequel's @import of old jokes is lazy.",
            "It plays like src=http: spam, and the href=https: jokes fall flat.",
            "A url(http: homage that <b>works</b>."]


@pytest.mark.parametrize("markup", [
    "<p>{}</p>".format(*[__import__("html").escape(MENTIONS[0])]),
    "<p>src=http://example.com</p><script>var d = {\"t\": \"url(http://x)\"};</script>",
    "<a href='#top'>top</a><img src='data:image/png;base64,AAAA'><a href='figures/x.png'>x</a>",
])
def test_text_and_script_data_that_mention_urls_are_not_references(markup):
    check_offline(markup, "page")


@pytest.mark.parametrize("markup, shown", [
    ("<img src='https://example.com/x.png'>", "src='https://example.com/x.png'"),
    ("<img src=//cdn.example.com/x.png>", "src='//cdn.example.com/x.png'"),
    ("<div style='background: url(http://x/y.png)'>", "style="),
    ("<style>@import 'theme.css';</style>", "<style> '@import'"),
    ("<link rel=stylesheet href=theme.css>", "<link>"),
    ("<form action='ftp://x'></form>", "action='ftp://x'"),
])
def test_our_markup_that_references_the_outside_is_refused(markup, shown):
    with pytest.raises(ValueError, match="references an external resource") as error:
        check_offline(markup, "page")
    assert shown in str(error.value)


def test_a_report_of_texts_that_mention_urls_saves(sentiment_model, tmp_path):
    result = explain.attention(sentiment_model, MENTIONS)
    report = Report(name="mentions").add(result, section="attention", view=True)
    page = (report.save(tmp_path) / "index.html").read_text(encoding="utf-8")
    assert "@import" in page and "<b>works</b>" not in page  # shown as text, escaped


GROUPS = [r"$\alert$ A", "paid $5 and $10", "=HYPERLINK(\"http://x\")"]


def test_group_values_are_drawn_as_written_never_as_mathtext(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame({"group": rng.choice(GROUPS, n), "label": rng.integers(0, 2, n),
                          "score": rng.random(n)})
    result = explain.audit(None, frame, sensitive_features="group", label="label",
                           score="score", n_permutations=999)
    for kind in result.applicable_plots():
        fig = result.plot(kind)
        fig.savefig(tmp_path / f"{kind}.png")  # mathtext would raise ParseFatalException here
        texts = [t for ax in fig.axes for t in (*ax.get_xticklabels(), *ax.get_yticklabels(),
                                                ax.title, ax.xaxis.label, ax.yaxis.label)]
        assert not any(t.get_parse_math() for t in texts if "$" in t.get_text()), kind
    drawn = " ".join(t.get_text() for ax in result.plot("metrics").axes
                     for t in ax.get_xticklabels())
    assert r"$\alert$ A" in drawn and "paid $5 and $10" in drawn


def test_formula_leading_cells_are_neutralised_and_numbers_kept(tmp_path):
    frame = pd.DataFrame({"text": ["=1+1", "@SUM(A1)", "+cmd|' /C calc'!A0",
                                   "-2+cmd|' /C calc'!A0", "plain", "-0.5", "-", "\tTab", None],
                          "score": [-1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]})
    safe = csv_safe(frame)
    assert safe["text"].tolist()[:8] == [
        "'=1+1", "'@SUM(A1)", "'+cmd|' /C calc'!A0", "'-2+cmd|' /C calc'!A0", "plain", "-0.5",
        "-", "'\tTab"]
    assert pd.isna(safe["text"].iloc[8])
    assert safe["score"].tolist() == frame["score"].tolist()
    assert frame["text"].iloc[0] == "=1+1"  # the caller's frame is not changed
    write_csv(frame.rename(columns={"text": "=col"}), tmp_path / "t.csv")
    back = pd.read_csv(tmp_path / "t.csv", keep_default_na=False)
    assert list(back.columns) == ["'=col", "score"] and back.iloc[0, 0] == "'=1+1"
    clean = pd.DataFrame({"a": ["x", "y"], "b": [1, 2]})
    assert csv_safe(clean) is clean  # nothing to neutralise: no copy


def test_the_report_data_files_are_neutralised(tmp_path):
    table = pd.DataFrame({"group": ["=cmd()", "ok"], "rate": [-0.25, 0.5]})
    saved = Report(name="csv").add(table, section="summary", title="rates").save(tmp_path)
    (written,) = (saved / "data").glob("*.csv")
    assert written.read_text(encoding="utf-8").splitlines() == [
        "group,rate", "'=cmd(),-0.25", "ok,0.5"]
