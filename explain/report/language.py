"""The report's causal-language-model analysis: the held-out perplexity of the model card against
its unigram and bigram baselines; integrated-gradients attributions of each token of a few
texts' continuations to the tokens before it (a heatmap per text and a per-token table); the
top next tokens of the texts' prompts."""

from __future__ import annotations

import math
import re
import textwrap

import matplotlib
import numpy as np
import pandas as pd
import torch

from ..attribution import attribute
from ..plotting import DIVERGING, diverging_norm, new_figure, style, text_colour
from ..text import read_texts
from .protocol import Analysis, Context
from .sections import Section

__all__ = ["CONTINUATION_WORDS", "LANGUAGE", "MAX_TEXTS", "N_STEPS", "OUTPUT", "PROMPT_WORDS",
           "TOP_K", "continuation_figure", "perplexity_sentence", "split_text"]

#: A text is split into a prompt of at most its first ``PROMPT_WORDS`` words and a
#: continuation of the next ``CONTINUATION_WORDS`` words at most (``split_text``).
PROMPT_WORDS = 6
CONTINUATION_WORDS = 3
#: Texts whose continuations are attributed (the first of the selected rows).
MAX_TEXTS = 3
#: Integration steps (32 cost the same time as 16 here, batched, and keep the completeness error
#: of the reference LM under 0.1%; 16 reached 0.8%); the table reports each explanation's.
N_STEPS = 32
#: The attributed output: a token's log-probability, the unit of perplexity. The scores of one
#: explanation sum to log p(token | context) - log p(token | baseline), so they compare across
#: tokens whose probabilities differ by orders of magnitude (a small LM gives most tokens
#: p < 0.01, and attributions of the probability then shrink with it to invisible values).
OUTPUT = "log_probability"
#: Next tokens listed per prompt.
TOP_K = 5

SECTION = Section("language", "Language model", caveat=(
    "The perplexities are the model card's: computed by the recipe that trained the model, on "
    "its own held-out split, not on the rows of this report. Integrated gradients explain the "
    "log-probability of each continuation token against a baseline in which every token is "
    "replaced by the pad token, so a score says how much a token moves that log-probability "
    "away from the baseline's, not what the model would do without the token. Next-token "
    "probabilities describe the text the model was trained on."))

_BASELINES = (("bigram", "bigram_baseline_perplexity"), ("unigram", "unigram_baseline_perplexity"))


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def split_text(text: str) -> tuple[str, str] | None:
    """``(prompt, continuation)`` of ``text``: the prompt is its first ``PROMPT_WORDS`` words
    (fewer when the text is short, so that up to ``CONTINUATION_WORDS`` words follow), the
    continuation the next ``CONTINUATION_WORDS`` words at most, with the whitespace before them
    (``prompt + continuation`` is a prefix of ``text``). ``None`` for a text of fewer than two
    words."""
    spans = [m.span() for m in re.finditer(r"\S+", text)]
    if len(spans) < 2:
        return None
    n_prompt = min(PROMPT_WORDS, max(1, len(spans) - CONTINUATION_WORDS))
    end = spans[n_prompt - 1][1]
    stop = spans[min(len(spans), n_prompt + CONTINUATION_WORDS) - 1][1]
    return text[:end], text[end:stop]


def perplexity_sentence(part: str, metrics) -> str:
    """The finding on the card's ``metrics``: held-out perplexity, its token count and where it
    stands against each baseline the card has (lower is better)."""
    value = metrics["heldout_perplexity"]
    tokens = metrics.get("heldout_tokens")
    on = f" on {round(tokens):,} held-out tokens" if _number(tokens) else " on its held-out split"
    relations = []
    for name, key in _BASELINES:
        baseline = metrics.get(key)
        if _number(baseline):
            word = "below" if value < baseline else "above" if value > baseline else "equal to"
            relations.append((word, f"the {name} baseline's {baseline:.4g}"))
    said = []
    for k, (word, what) in enumerate(relations):
        said.append(what if k and word == relations[k - 1][0] else f"{word} {what}")
    compared = f", {' and '.join(said)}" if said else ""
    return f"{part}: perplexity {value:.4g}{on}{compared} (model card; lower is better)."


def _applies(context: Context) -> str | None:
    if context.model.task != "causal-lm":
        return (f"the language-model analysis needs a causal language model; this is a "
                f"{context.model.task!r} model")
    if context.text_column is None:
        return "the language-model analysis needs a column of texts"
    return None


def _run(context: Context) -> None:
    _perplexity(context)
    pairs = []
    texts = read_texts(context.data, context.text_column, context.rows)
    for row, text in zip(context.rows, texts, strict=True):
        split = split_text(text)
        if split is None:
            context.not_run(f"row {row} has fewer than two words: no prompt and continuation",
                            section=SECTION.key)
        else:
            pairs.append((row, *split))
    if pairs:
        _continuations(context, pairs[:MAX_TEXTS])
        _next_tokens(context, pairs)


def _perplexity(context: Context) -> None:
    report, part = context.report, context.part
    metrics = (context.model.card or {}).get("metrics") or {}
    value = metrics.get("heldout_perplexity")
    if not _number(value):
        context.not_run("the model card records no held-out perplexity", section=SECTION.key)
        return
    rows = [{"model": part, "perplexity": float(value)}]
    rows += [{"model": f"{name} baseline", "perplexity": float(metrics[key])}
             for name, key in _BASELINES if _number(metrics.get(key))]
    table = pd.DataFrame(rows)
    tokens = metrics.get("heldout_tokens")
    if _number(tokens):
        table["heldout_tokens"] = round(tokens)
    report.add(table, section=SECTION.key, title=f"{part}: held-out perplexity",
               caption="Perplexity (exp of the mean negative log-probability per token; lower "
                       "is better) of the model and of the baselines its card reports, on the "
                       "same held-out tokens, as the model card gives them.")
    source = report.last_id
    report.add_metric(f"{part}: held-out perplexity", float(value), sources=source,
                      kind="perplexity", part=part,
                      note=", ".join(f"{r['model']} {r['perplexity']:.4g}" for r in rows[1:])
                      or None)
    report.add_finding(perplexity_sentence(part, metrics), sources=source, kind="perplexity",
                       part=part)


def _decoder(tokenizer):
    """Token string -> the text it stands for (byte-level BPE: ``'Ġeconomy'`` -> ``' economy'``)."""
    def decode(token: str) -> str:
        return tokenizer.convert_tokens_to_string([token])
    return decode


def _shown(text: str) -> str:
    return text.strip() or repr(text)


def _continuations(context: Context, pairs) -> None:
    report, part, loaded = context.report, context.part, context.model
    decode = _decoder(loaded.tokenizer)
    result = attribute(loaded, [p for _, p, _ in pairs], continuation=[c for _, _, c in pairs],
                       method="integrated_gradients", n_steps=N_STEPS, output=OUTPUT,
                       faithfulness=False, seed=context.seed, progress=False)
    tokens, words = result.to_frame("token"), result.to_frame("word")
    explained = result.explanations()
    rows = []
    for _, e in explained.iterrows():
        k, step = int(e["input_id"]), int(e["step"])
        these = words[(words["input_id"] == k) & (words["step"] == step)]
        top = these.loc[these["score"].idxmax()]
        # a token inside a word sees only the word's first part: name that part
        seen = tokens[(tokens["input_id"] == k) & (tokens["step"] == step)]["end"].max()
        text = pairs[k][1] + pairs[k][2]
        rows.append({"row": pairs[k][0], "step": step, "token": decode(e["target"]),
                     "log_probability": float(e["target_score"]),
                     "predicted_token": decode(e["predicted_label"]),
                     "top_word": text[int(top["start"]):min(int(top["end"]), int(seen))],
                     "top_word_score": float(top["score"]),
                     "relative_completeness_error": float(e["relative_delta"])})
    table = pd.DataFrame(rows)
    for k, (row, prompt, continuation) in enumerate(pairs):
        fig = continuation_figure(tokens[tokens["input_id"] == k], prompt + continuation, decode,
                                  title=f"{part}: integrated gradients of each continuation "
                                        f"token's log-probability, example {k + 1}")
        report.add(fig, section=SECTION.key,
                   title=f"{part}: continuation attributions of example {k + 1} (row {row})",
                   caption=f"“{prompt}” continued by “{continuation.strip()}”. Each row "
                           f"explains one continuation token's log-probability (in brackets) "
                           f"given the tokens before it; red raises it, blue lowers it; grey "
                           f"cells are the token itself and the tokens after it; the dashed "
                           f"line ends the prompt; ## marks a token that continues a word.")
    report.add(result, section=SECTION.key, plots=(), data=table, max_rows=len(table),
               title=f"{part}: per-token attributions of the continuations",
               caption=f"One row per continuation token of the examples above: its "
                       f"log-probability given the tokens before it, the model's most likely "
                       f"token there, the earlier word with the largest attribution (its part "
                       f"before the token when the token continues a word), and the "
                       f"completeness error of integrated gradients ({N_STEPS} steps) as a "
                       f"fraction of the change in log-probability from the baseline.")
    hits = int((table["token"] == table["predicted_token"]).sum())
    report.add_finding(
        f"{part}: the model's most likely next token is the actual one for {hits} of "
        f"{len(table)} continuation tokens of {len(pairs)} texts; integrated gradients "
        f"explain each with a "
        f"completeness error of at most {table['relative_completeness_error'].max():.1%} of "
        f"its change in log-probability.", sources=report.last_id, kind="continuation",
        part=part)


def continuation_figure(frame: pd.DataFrame, text: str, decode=str, *, title: str):
    """Continuation token (rows, with its log-probability) x earlier token (columns) heatmap of
    the token-level attributions ``frame`` of one input (``AttributionResult.to_frame("token")``
    rows of one ``input_id``) whose prompt and continuation are ``text``: lower-triangular, a
    diverging scale centred at 0 with its colour bar. ``decode`` turns token strings into text;
    a token that continues a word is marked ``##``."""
    steps = sorted(int(s) for s in frame["step"].unique())
    by_step = {s: frame[frame["step"] == s].sort_values("position") for s in steps}
    last = by_step[steps[-1]]
    n_cols = len(last)
    matrix = np.full((len(steps), n_cols), np.nan)
    for i, s in enumerate(steps):
        group = by_step[s]
        matrix[i, group["position"].to_numpy()] = group["score"].to_numpy()
    ends = last["end"].tolist()

    def shown(token: str, position: int) -> str:
        # inside a word when the characters on both sides of its left edge are letters/digits
        edge = ends[position - 1] if position else -1
        inside = 0 < edge < len(text) and text[edge - 1].isalnum() and text[edge].isalnum()
        return ("##" if inside else "") + _shown(decode(token))

    columns = [shown(t, j) for j, t in enumerate(last["label"])]
    rows = [f"{shown(by_step[s]['target'].iloc[0], len(by_step[s]))} "
            f"({by_step[s]['target_score'].iloc[0]:.1f})" for s in steps]
    n_prompt = len(by_step[steps[0]])
    norm = diverging_norm(matrix)
    cmap = matplotlib.colormaps[DIVERGING].with_extremes(bad="#e6e6e6")
    width = min(16.0, max(5.5, 0.45 * n_cols + 3.0))
    fig, ax = new_figure(width, max(2.8, 0.42 * len(steps) + 2.0))
    with style():
        image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, norm=norm, aspect="auto")
        for (i, j), value in np.ndenumerate(matrix):
            if np.isfinite(value):
                number = f"{value:.1f}"
                ax.text(j, i, "0.0" if number == "-0.0" else number, ha="center", va="center",
                        fontsize=6.5, color=text_colour(image.cmap(image.norm(value))))
        ax.axvline(n_prompt - 0.5, color="0.25", linestyle="--", linewidth=0.9)
        ax.set_xticks(range(n_cols), columns, rotation=60, ha="right", rotation_mode="anchor")
        ax.set_yticks(range(len(steps)), rows)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_xlabel("earlier token (attributed)")
        ax.set_ylabel("continuation token (log-probability)")
        ax.set_title("\n".join(textwrap.wrap(title, width=int(11 * width))))
        bar = fig.colorbar(image, ax=ax, shrink=0.9, pad=0.02)
        bar.set_label("attribution to the log-probability")
    return fig


def _next_tokens(context: Context, pairs) -> None:
    report, part, loaded = context.report, context.part, context.model
    decode = _decoder(loaded.tokenizer)
    prompts = [p for _, p, _ in pairs]
    batch = loaded.encode_texts(prompts)
    full = loaded.encode_texts([p + c for _, p, c in pairs])
    last = torch.as_tensor(batch.lengths) - 1
    with torch.inference_mode():
        logits = loaded.model(**loaded.to_device(batch.model_inputs())).logits
        probabilities = logits[torch.arange(len(prompts)), last.to(logits.device)].float()
        probabilities = probabilities.softmax(-1).cpu()
    top_p, top_i = probabilities.topk(TOP_K, dim=-1)
    rows, hits = [], 0
    for k, (row, prompt, continuation) in enumerate(pairs):
        # the continuation's first token: the first one that ends after the prompt
        actual = next((int(full.input_ids[k, t]) for t in range(full.lengths[k])
                       if full.offsets[k][t][1] > len(prompt) and not full.special[k][t]), None)
        if actual is None:
            raise ValueError(f"row {row}: the continuation {continuation!r} of the prompt "
                             f"{prompt[:60]!r} has no token within {loaded.name}'s context; "
                             f"shorten the text or leave the row out")
        hits += actual in top_i[k].tolist()
        for rank, (p, i) in enumerate(zip(top_p[k].tolist(), top_i[k].tolist(), strict=True)):
            rows.append({"row": row, "prompt": prompt, "rank": rank + 1,
                         "token": decode(loaded.tokenizer.convert_ids_to_tokens(i)),
                         "probability": p, "actual_next": i == actual})
    report.add(pd.DataFrame(rows), section=SECTION.key, max_rows=len(rows),
               title=f"{part}: top-{TOP_K} next tokens",
               caption=f"The model's {TOP_K} most likely next tokens after each prompt (the "
                       f"first words of a selected text), with their probabilities; "
                       f"actual_next marks the token the text continues with, among the top "
                       f"{TOP_K} for {hits} of {len(pairs)} prompts.")


LANGUAGE = Analysis(
    "language", "causal language models: held-out perplexity against the card's baselines, "
                "attributions of each continuation token to the tokens before it, and the top "
                "next tokens of a few prompts", SECTION, _run, _applies)
