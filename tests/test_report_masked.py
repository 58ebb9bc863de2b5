"""The masked-language-model analysis of a report (``explain.report.masked.MASKED``) on the
trained reference masked LM ``mlm``."""

from __future__ import annotations

import html
import json

import numpy as np
import pandas as pd
import pytest

import explain
from explain.hooks import count_hooks
from explain.report import build_report
from explain.report.masked import STOP_WORDS, TOP_K, accuracy_sentence, choose_word


@pytest.fixture(scope="module")
def mlm():
    import explain_models

    return explain.load_model(explain_models.ensure("mlm"))


def test_report_of_the_mlm(mlm, tmp_path):
    report = build_report(mlm, quiet=True, n_examples=3, analyses=("masked",))
    path = report.save(tmp_path / "report")
    manifest = json.loads((path / "manifest.json").read_text())
    items = {a["title"]: a for a in manifest["analyses"] if a["section"] == "masked"}
    assert set(items) == {"mlm: held-out masked-token accuracy",
                          f"mlm: top-{TOP_K} predictions at the mask",
                          "mlm: attributions of the masked word at the mask"}
    for item in items.values():
        assert (path / "data" / f"{item['id']}.csv").is_file()
    assert any(path.glob(f"figures/{items['mlm: attributions of the masked word at the mask']['id']}*.png"))
    assert count_hooks(mlm) == 0

    # the accuracy table and sentence are the card's numbers
    metrics = mlm.card["metrics"]
    accuracy = pd.read_csv(path / "data" / f"{items['mlm: held-out masked-token accuracy']['id']}.csv")
    np.testing.assert_allclose(accuracy.top1_accuracy, [metrics["heldout_masked_accuracy"],
                                                        metrics["unigram_baseline_accuracy"]])
    [finding] = [f for f in manifest["findings"] if f["kind"] == "masked_accuracy"]
    assert finding["text"] == accuracy_sentence("mlm", metrics)
    assert f"{metrics['heldout_masked_accuracy']:.1%}" in finding["text"]
    assert f"above the unigram baseline's {metrics['unigram_baseline_accuracy']:.1%}" in finding["text"]
    assert f"of {round(metrics['heldout_masked_tokens']):,} masked" in finding["text"]
    [metric] = [m for m in manifest["metrics"] if m["kind"] == "masked_accuracy"]
    assert metric["value"] == pytest.approx(metrics["heldout_masked_accuracy"])

    # each example masks one content word of its text; its top-5 are ranked probabilities
    import explain_models

    heldout = pd.read_csv(explain_models.ensure("mlm") / "heldout.csv")
    top = pd.read_csv(path / "data" / f"{items[f'mlm: top-{TOP_K} predictions at the mask']['id']}.csv")
    assert top.row.nunique() == 3 and (top.groupby("row").size() == TOP_K).all()
    for row, group in top.groupby("row"):
        assert group.probability.is_monotonic_decreasing and group.probability.sum() <= 1 + 1e-6
        masked, word = group.masked_text.iloc[0], group.masked_word.iloc[0]
        assert masked.count("[MASK]") == 1
        assert masked.replace("[MASK]", word).lower() == heldout.text[row].lower()
    assert (top.is_masked_word == (top.token == top.masked_word)).all()
    assert not top.masked_word.str.lower().isin(STOP_WORDS).any()


def test_the_masked_word_is_a_seeded_content_word(mlm):
    text = "The acting was wonderful and the story moved me ."
    spans = {choose_word(text, mlm.tokenizer, np.random.default_rng([0, k])) for k in range(40)}
    words = {text[a:b] for a, b in spans}
    assert words <= {"acting", "wonderful", "story", "moved"} and len(words) > 1
    assert choose_word(text, mlm.tokenizer, np.random.default_rng([0, 1])) == \
        choose_word(text, mlm.tokenizer, np.random.default_rng([0, 1]))
    assert choose_word("it is so", mlm.tokenizer, np.random.default_rng(0)) is None


def test_a_model_that_is_not_a_masked_lm_gets_the_reason(tiny_bert, tmp_path):
    table = pd.DataFrame({"text": ["a fine film", "a dull film"]})
    report = build_report(tiny_bert, table, name="toy", quiet=True, analyses=("masked",))
    page = html.unescape((report.save(tmp_path / "toy") / "index.html").read_text())
    section = page[page.index("<section id='section-masked'"):]
    section = section[:section.index("</section>")]
    assert (f"{tiny_bert.name}: the masked-language-model analysis needs a masked "
            f"language model; this is a 'sequence-classification' model") in section
