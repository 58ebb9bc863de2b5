"""A report analysis added from outside the package, through the public extension point only
(``explain.report.Analysis``, ``Section``, ``register_analysis``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from explain.report import ANALYSES, SECTIONS, Analysis, Section, build_report, register_analysis

DATA_CHECKS = Section("data_checks", "Data checks",
                      caveat="Row counts say how much data there was, not how good it is.")


def count_rows(context):
    frame = pd.DataFrame({"rows": [len(context.data)], "columns": [context.data.shape[1]]})
    context.report.add(frame, section="data_checks", title=f"{context.part}: row count")
    context.report.add_finding(f"{context.part}: {len(context.data)} rows were analysed.",
                               sources=context.report.last_id, kind="row_count",
                               part=context.part)


def needs_labels(context):
    return None if context.label else "the label check needs a label column (--label)"


ROW_COUNT = Analysis("row_count", "the number of rows analysed", DATA_CHECKS, count_rows)
LABEL_CHECK = Analysis("label_check", "share of each label", DATA_CHECKS,
                       run=lambda context: None, applies=needs_labels)


@pytest.fixture
def registered():
    """Register the toy analyses for one test, and leave the registries as they were."""
    from explain.report import analyses, sections

    saved = (dict(analyses._analyses), dict(sections._sections), dict(sections._content))
    register_analysis(ROW_COUNT)
    register_analysis(LABEL_CHECK)
    try:
        yield
    finally:
        for live, before in zip((analyses._analyses, sections._sections, sections._content),
                                saved, strict=True):
            live.clear()
            live.update(before)


def test_a_registered_analysis_runs_and_one_that_does_not_apply_says_why(registered, tiny_mlp,
                                                                          tmp_path):
    # the new section sits before the caveats; the analyses run after the built-in ones
    assert list(SECTIONS)[-3:] == ["data_checks", "caveats", "provenance"]
    assert list(ANALYSES)[-2:] == ["row_count", "label_check"]
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(12, 5)), columns=[f"x{i}" for i in range(5)])
    report = build_report(tiny_mlp, table, name="toy", quiet=True,
                          analyses=("row_count", "label_check"))
    path = report.save(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    [item] = [a for a in manifest["analyses"] if a["section"] == "data_checks"
              and a["kind"] == "table"]
    assert pd.read_csv(path / "data" / f"{item['id']}.csv").to_dict("list") == {
        "rows": [12], "columns": [5]}
    [finding] = [f for f in manifest["findings"] if f["kind"] == "row_count"]
    assert finding["text"] == "tiny-mlp: 12 rows were analysed." and finding["sources"] == [
        item["id"]]
    page = (path / "index.html").read_text()
    section = page[page.index("<section id='section-data_checks'"):]
    section = section[:section.index("</section>")]
    assert "<h2>Data checks</h2>" in section
    assert "Not run: tiny-mlp: the label check needs a label column (--label)" in section
    assert "Row counts say how much data there was" in page  # its caveat

    # with a label it applies and runs (it adds nothing), so no reason is shown
    table["y"] = [0, 1] * 6
    report = build_report(tiny_mlp, table, name="labelled", quiet=True, label="y",
                          analyses=("label_check",))
    assert report.sections["data_checks"] == 0
    assert "label check" not in json.dumps(report.manifest()["skipped"])


def test_registration_is_checked(registered):
    with pytest.raises(ValueError, match="an analysis named 'row_count' is already registered"):
        register_analysis(Analysis("row_count", "another", DATA_CHECKS, count_rows))
    with pytest.raises(ValueError, match="a different section is already registered as "
                                         "'fairness'"):
        register_analysis(Analysis("mine", "x", Section("fairness", "Mine"), count_rows))
    assert "mine" not in ANALYSES
    with pytest.raises(TypeError, match="section must be an explain.report.Section"):
        Analysis("mine", "x", "fairness", count_rows)
    with pytest.raises(ValueError, match="invalid section key 'Data checks'"):
        Section("Data checks", "Data checks")
    with pytest.raises(TypeError, match="register_analysis takes an explain.report.Analysis"):
        register_analysis(count_rows)
    register_analysis(ROW_COUNT)  # the same spec again: nothing changes
    assert list(ANALYSES).count("row_count") == 1


def test_an_analysis_may_only_return_context_fields(registered, tiny_mlp):
    register_analysis(Analysis("bad", "returns junk", DATA_CHECKS,
                               run=lambda context: {"colour": "red"}))
    table = pd.DataFrame(np.zeros((3, 5)), columns=[f"x{i}" for i in range(5)])
    with pytest.raises(TypeError, match="analysis 'bad' returned 'colour', which is not a field"):
        build_report(tiny_mlp, table, quiet=True, analyses=("bad",))


def test_a_reference_name_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"explain\.load_model\(explain_models\.ensure\("
                                         r"'sentiment'\)\)"):
        build_report("sentiment", quiet=True)
