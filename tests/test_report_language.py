"""The report's causal-language-model analysis (``explain.report.language.LANGUAGE``): on the
trained ``lm``, the card's perplexities, continuation attributions checked against direct forward
passes, figures, next tokens; the reasons it gives when it cannot run."""

from __future__ import annotations

import json
import math

import explain_models
import numpy as np
import pandas as pd
import pytest
import torch

import explain
from explain.hooks import count_hooks
from explain.report import build_report
from explain.report.language import (
    CONTINUATION_WORDS,
    MAX_TEXTS,
    PROMPT_WORDS,
    TOP_K,
    perplexity_sentence,
    split_text,
)


@pytest.fixture(scope="module")
def lm():
    return explain.load_model(explain_models.ensure("lm", progress=False))


def _section(page: str, key: str) -> str:
    section = page[page.index(f"<section id='section-{key}'"):]
    return section[:section.index("</section>")]


def test_split_text_keeps_the_spacing_and_leaves_words_to_continue():
    words = [f"w{i}" for i in range(12)]
    prompt, continuation = split_text(" ".join(words))
    assert prompt == " ".join(words[:PROMPT_WORDS])
    assert continuation == " " + " ".join(words[PROMPT_WORDS:PROMPT_WORDS + CONTINUATION_WORDS])
    assert split_text("one  two, three") == ("one", "  two, three")   # short: one-word prompt
    assert split_text("alone ") is None


def test_the_perplexity_sentence_compares_with_each_baseline():
    metrics = {"heldout_perplexity": 80.25, "heldout_tokens": 33614.0,
               "bigram_baseline_perplexity": 91.3, "unigram_baseline_perplexity": 626.4}
    assert perplexity_sentence("lm", metrics) == (
        "lm: perplexity 80.25 on 33,614 held-out tokens, below the bigram baseline's 91.3 and "
        "the unigram baseline's 626.4 (model card; lower is better).")
    metrics["heldout_perplexity"] = 123.5
    assert perplexity_sentence("lm", metrics) == (
        "lm: perplexity 123.5 on 33,614 held-out tokens, above the bigram baseline's 91.3 and "
        "below the unigram baseline's 626.4 (model card; lower is better).")
    assert perplexity_sentence("lm", {"heldout_perplexity": 50.0}) == (
        "lm: perplexity 50 on its held-out split (model card; lower is better).")


def test_a_report_of_the_lm(lm, tmp_path):
    report = build_report(lm, name="lm", quiet=True, analyses=("language",), n_examples=4)
    path = report.save(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    items = [a for a in manifest["analyses"] if a["section"] == "language"]
    kinds = [a["kind"] for a in items]
    assert kinds == ["table", *["figure"] * MAX_TEXTS, "result", "table"], kinds
    heldout = pd.read_csv(path / "data" / f"{items[0]['id']}.csv")

    # 1. the card's numbers, in the table, the metric and the sentence
    metrics = lm.card["metrics"]
    assert heldout["model"].tolist() == ["lm", "bigram baseline", "unigram baseline"]
    np.testing.assert_allclose(heldout["perplexity"], [
        metrics["heldout_perplexity"], metrics["bigram_baseline_perplexity"],
        metrics["unigram_baseline_perplexity"]], rtol=1e-12)
    [finding] = [f for f in manifest["findings"] if f["kind"] == "perplexity"]
    assert finding["sources"] == [items[0]["id"]]
    assert finding["text"] == perplexity_sentence("lm", metrics)
    assert (f"perplexity {metrics['heldout_perplexity']:.4g} on "
            f"{round(metrics['heldout_tokens']):,} held-out tokens") in finding["text"]
    for name in ("bigram", "unigram"):
        assert f"the {name} baseline's {metrics[f'{name}_baseline_perplexity']:.4g}" in \
            finding["text"]
    [metric] = [m for m in manifest["metrics"] if m["kind"] == "perplexity"]
    assert metric["value"] == metrics["heldout_perplexity"]

    # 2. one figure per text, one table row per continuation token
    for item in items[1:1 + MAX_TEXTS]:
        figure = path / "figures" / f"{item['id']}.png"
        assert figure.stat().st_size > 10_000
    assert items[1 + MAX_TEXTS]["method"] == "integrated_gradients"
    assert items[1 + MAX_TEXTS]["parameters"]["output"] == "log_probability"
    table = pd.read_csv(path / "data" / f"{items[1 + MAX_TEXTS]['id']}.csv",
                        keep_default_na=False)
    texts = pd.read_csv(lm.provenance["source"] + "/heldout.csv")["text"].tolist()
    tokenizer = lm.tokenizer
    for row in range(MAX_TEXTS):
        prompt, continuation = split_text(texts[row])
        these = table[table["row"] == row]
        # the tokens of the table are the continuation, and each log-probability is the
        # model's, from one forward pass over prompt + continuation (teacher forcing)
        assert "".join(these["token"]) == continuation
        ids = tokenizer(prompt + continuation, add_special_tokens=False)["input_ids"]
        n = len(these)
        with torch.no_grad():
            logits = lm.model(input_ids=torch.tensor([ids])).logits[0].double()
        log_p = logits.log_softmax(-1)[torch.arange(len(ids) - n - 1, len(ids) - 1),
                                       torch.tensor(ids[-n:])]
        np.testing.assert_allclose(these["log_probability"], log_p.numpy(), atol=1e-4)
        for step, word in enumerate(these["top_word"]):  # a word (or its part) already read
            assert word and word in prompt + "".join(these["token"].iloc[:step]), (step, word)
    assert (table["relative_completeness_error"] < 0.01).all(), table
    [finding] = [f for f in manifest["findings"] if f["kind"] == "continuation"]
    hits = int((table["token"] == table["predicted_token"]).sum())
    assert finding["text"].startswith(f"lm: the model's most likely next token is the actual "
                                      f"one for {hits} of {len(table)} continuation tokens")

    # 3. the top next tokens of every selected prompt
    top = pd.read_csv(path / "data" / f"{items[-1]['id']}.csv", keep_default_na=False)
    assert top.groupby("row")["rank"].apply(list).tolist() == [list(range(1, TOP_K + 1))] * 4
    for row, group in top.groupby("row"):
        p = group["probability"].to_numpy()
        assert np.all(np.diff(p) <= 0) and 0 < p.sum() <= 1 + 1e-6
        prompt, continuation = split_text(texts[row])
        first = tokenizer.convert_tokens_to_string(tokenizer.tokenize(continuation)[:1])
        assert group["actual_next"].tolist() == (group["token"] == first).tolist()
        if row < MAX_TEXTS:  # the same prediction as the attribution's first step
            step0 = table[(table["row"] == row) & (table["step"] == 0)]
            assert group["token"].iloc[0] == step0["predicted_token"].iloc[0]
    page = (path / "index.html").read_text()
    assert "<h2>Language model</h2>" in _section(page, "language")
    assert count_hooks(lm) == 0 and not lm.model.training


def test_a_model_that_is_not_a_causal_lm_gets_the_reason(tiny_mlp, tmp_path):
    table = pd.DataFrame(np.random.default_rng(0).normal(size=(6, 5)),
                         columns=[f"x{i}" for i in range(5)])
    report = build_report(tiny_mlp, table, name="mlp", quiet=True, analyses=("language",))
    path = report.save(tmp_path)
    reason = json.loads((path / "manifest.json").read_text())["skipped"]["language"]
    assert reason == ("tiny-mlp: the language-model analysis needs a causal language model; "
                      "this is a 'tabular-classification' model")


def test_without_card_metrics_and_with_one_word_texts_it_says_what_it_left_out(
        tiny_gpt2, tmp_path):
    data = pd.DataFrame({"text": ["hello", "the cat sat on the mat and looked at me"]})
    report = build_report(tiny_gpt2, data, name="tiny", quiet=True, analyses=("language",))
    path = report.save(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    items = [a for a in manifest["analyses"] if a["section"] == "language"]
    assert [a["kind"] for a in items] == ["figure", "result", "table", "text", "text"]
    section = _section((path / "index.html").read_text(), "language")
    part = tiny_gpt2.name
    assert f"Not run: {part}: the model card records no held-out perplexity" in section
    assert f"Not run: {part}: row 0 has fewer than two words" in section
    assert not [f for f in manifest["findings"] if f["kind"] == "perplexity"]
    assert math.isfinite(float(pd.read_csv(
        path / "data" / f"{items[1]['id']}.csv")["log_probability"].iloc[0]))
