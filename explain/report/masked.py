"""The report's masked-language-model analysis: the held-out masked-token accuracy of the model
card against its unigram baseline; for a few selected texts, one content word masked, the
model's top predictions there, and the integrated-gradients attribution of the masked word's
probability at the mask to the tokens of the masked text."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import torch

from ..attribution import attribute
from ..text import read_texts
from .protocol import Analysis, Context
from .sections import Section

__all__ = ["MASKED", "MAX_TEXTS", "N_STEPS", "STOP_WORDS", "TOP_K", "accuracy_sentence",
           "choose_word"]

#: Texts whose masked word is predicted and attributed (the first of the selected rows).
MAX_TEXTS = 3
#: Integration steps of integrated gradients (the table reports each completeness error).
N_STEPS = 32
#: Predictions listed per masked word.
TOP_K = 5
#: Function words never chosen for masking (content words are what the model must infer).
_FUNCTION_WORDS = (
    "about above after again all also and any are because been before being both but can "
    "could did does doing down each even ever few for from further had has have having her "
    "here hers him his how into its itself just more most much nor not now off once only "
    "other our out over own same she should some such than that the their theirs them then "
    "there these they this those through too under until very was were what when where "
    "which while who whom why will with would you your yet one")
STOP_WORDS = frozenset(_FUNCTION_WORDS.split())

SECTION = Section("masked", "Masked language model", caveat=(
    "The accuracies are the model card's: computed by the recipe that trained the model on its "
    "own held-out split, not on the rows of this report. In each example one content word is "
    "replaced by the mask token; integrated gradients explain the probability of the model's "
    "top prediction there against a baseline in which every token is replaced by the pad "
    "token, so a score says how much a token moves that probability away from the baseline's."))

_KEYS = (("top1_accuracy", "heldout_masked_accuracy", "unigram_baseline_accuracy"),
         (f"top{TOP_K}_accuracy", f"heldout_masked_top{TOP_K}_accuracy",
          f"unigram_baseline_top{TOP_K}_accuracy"))


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def accuracy_sentence(part: str, metrics) -> str:
    """The finding on the card's ``metrics``: held-out top-1 (and top-5) masked-token accuracy
    against the unigram baseline's."""
    value, baseline = metrics["heldout_masked_accuracy"], metrics["unigram_baseline_accuracy"]
    top, top_baseline = (metrics.get(_KEYS[1][1]), metrics.get(_KEYS[1][2]))
    tokens = metrics.get("heldout_masked_tokens")
    on = f" of {round(tokens):,} masked held-out tokens" if _number(tokens) else ""
    word = "above" if value > baseline else "below" if value < baseline else "equal to"
    sentence = (f"{part}: the top prediction is the masked token for {value:.1%}{on}, {word} "
                f"the unigram baseline's {baseline:.1%} (always the most frequent training "
                f"token)")
    if _number(top) and _number(top_baseline):
        # the card's top-5 metrics; written out so that every number is one of the table's
        sentence += f"; among the five most likely: {top:.1%} against {top_baseline:.1%}"
    return sentence + " (model card)."


def choose_word(text: str, tokenizer, rng: np.random.Generator) -> tuple[int, int] | None:
    """``(start, end)`` of the word of ``text`` to mask: drawn uniformly by ``rng`` among its
    content words (letters only, at least 3 of them, not in ``STOP_WORDS``, one token of
    ``tokenizer``, so the mask stands for exactly the word); ``None`` when there is none."""
    spans = [m.span() for m in re.finditer(r"[A-Za-z]+", text)
             if len(m.group()) >= 3 and m.group().lower() not in STOP_WORDS
             and len(tokenizer.tokenize(m.group())) == 1]
    return spans[int(rng.integers(len(spans)))] if spans else None


def _applies(context: Context) -> str | None:
    if context.model.task != "masked-lm":
        return (f"the masked-language-model analysis needs a masked language model; this is a "
                f"{context.model.task!r} model")
    if context.text_column is None:
        return "the masked-language-model analysis needs a column of texts"
    return None


def _run(context: Context) -> None:
    _accuracy(context)
    tokenizer = context.model.tokenizer
    examples = []
    texts = read_texts(context.data, context.text_column, context.rows)
    for row, text in zip(context.rows, texts, strict=True):
        span = choose_word(text, tokenizer, np.random.default_rng([context.seed, row]))
        if span is None:
            context.not_run(f"row {row} has no content word to mask", section=SECTION.key)
            continue
        start, end = span
        examples.append((row, text[:start] + tokenizer.mask_token + text[end:],
                         tokenizer.tokenize(text[start:end])[0]))
        if len(examples) == MAX_TEXTS:
            break
    if examples:
        _predictions(context, examples)
        _attributions(context, examples)


def _accuracy(context: Context) -> None:
    report, part = context.report, context.part
    metrics = (context.model.card or {}).get("metrics") or {}
    if not all(_number(metrics.get(k)) for k in _KEYS[0][1:]):
        context.not_run("the model card records no held-out masked-token accuracy and "
                        "unigram baseline", section=SECTION.key)
        return
    keys = [k for k in _KEYS if _number(metrics.get(k[1])) and _number(metrics.get(k[2]))]
    table = pd.DataFrame([{"model": part, **{c: float(metrics[m]) for c, m, _ in keys}},
                          {"model": "unigram baseline", **{c: float(metrics[b]) for c, _, b in keys}}])
    tokens = metrics.get("heldout_masked_tokens")
    if _number(tokens):
        table["heldout_masked_tokens"] = round(tokens)
    report.add(table, section=SECTION.key, title=f"{part}: held-out masked-token accuracy",
               caption=f"Share of masked held-out tokens that are the model's top prediction "
                       f"(top1) or among its {TOP_K} most likely tokens (top{TOP_K}), and the "
                       f"same for the unigram baseline (always the most frequent training "
                       f"tokens), as the model card gives them.")
    source = report.last_id
    report.add_metric(f"{part}: held-out masked-token accuracy",
                      float(metrics["heldout_masked_accuracy"]), percent=True, sources=source,
                      kind="masked_accuracy", part=part,
                      note=f"unigram baseline {metrics['unigram_baseline_accuracy']:.1%}")
    report.add_finding(accuracy_sentence(part, metrics), sources=source, kind="masked_accuracy",
                       part=part)


def _predictions(context: Context, examples) -> None:
    report, part, loaded = context.report, context.part, context.model
    tokenizer = loaded.tokenizer
    batch = tokenizer([t for _, t, _ in examples], padding=True, truncation=True,
                      return_tensors="pt")
    rows, cols = (batch["input_ids"] == tokenizer.mask_token_id).nonzero(as_tuple=True)
    with torch.inference_mode():
        logits = loaded.model(**loaded.to_device(dict(batch))).logits
        probabilities = logits[rows.to(logits.device), cols.to(logits.device)].float()
        probabilities = probabilities.softmax(-1).cpu()
    top_p, top_i = probabilities.topk(TOP_K, dim=-1)
    table, hits = [], 0
    for k, (row, masked, word) in enumerate(examples):
        tokens = tokenizer.convert_ids_to_tokens(top_i[k].tolist())
        hits += word in tokens
        table += [{"row": row, "masked_text": masked, "masked_word": word, "rank": r + 1,
                   "token": token, "probability": float(p), "is_masked_word": token == word}
                  for r, (token, p) in enumerate(zip(tokens, top_p[k].tolist(), strict=True))]
    report.add(pd.DataFrame(table), section=SECTION.key, max_rows=len(table),
               title=f"{part}: top-{TOP_K} predictions at the mask",
               caption=f"One content word of each selected text (drawn with the report's seed "
                       f"among its words of at least 3 letters that are one token and not "
                       f"function words) is replaced by {tokenizer.mask_token}; the model's "
                       f"{TOP_K} most likely tokens there with their probabilities; "
                       f"is_masked_word marks the word that was masked.")
    report.add_finding(f"{part}: the masked word is among the model's top {TOP_K} predictions "
                       f"in {hits} of {len(examples)} example texts.", sources=report.last_id,
                       kind="masked_examples", part=part)


def _attributions(context: Context, examples) -> None:
    report, part = context.report, context.part
    # the masked word's own probability: what in the context points to the word that was there
    # (the top prediction is often punctuation, which says little about the text)
    result = attribute(context.model, [t for _, t, _ in examples],
                       target=[word for _, _, word in examples], output="log_probability",
                       method="integrated_gradients", n_steps=N_STEPS, faithfulness=False,
                       seed=context.seed, progress=False)
    errors = result.explanations()["relative_delta"].abs()
    report.add(result, section=SECTION.key, plots="text",
               plot_options={"max_inputs": len(examples)},
               title=f"{part}: attributions of the masked word at the mask",
               caption=f"Integrated gradients ({N_STEPS} steps) of the log-probability of the "
                       f"word that was masked, at the mask (the unit of a language model's loss; "
                       f"the probabilities of unlikely words give vanishing attributions), over "
                       f"the tokens of each masked text (rows "
                       f"{', '.join(str(r) for r, _, _ in examples)}); red raises it, blue "
                       f"lowers it. Completeness error at most {errors.max():.1%} of the change "
                       f"from the baseline.")


MASKED = Analysis(
    "masked", "masked language models: held-out masked-token accuracy against the card's "
              "unigram baseline, top predictions for a masked content word of a few texts, and "
              "the integrated-gradients attribution of that word's probability", SECTION, _run, _applies)
