"""The interactive attention view: a head view and a model view, fully offline.

``render_view(result)`` returns an HTML fragment for notebooks (``AttentionResult._repr_html_``)
and ``render_page(result)`` one standalone HTML document (``AttentionResult.save_html``). Both

* inline their JavaScript and CSS (``explain/static/attention_view.{js,css}``, read at run time):
  no CDN, no request of any kind; the standalone page also sets a Content-Security-Policy that
  forbids every network fetch;
* give every view a unique element id, so several views in one notebook work independently;
* carry a static PNG of the layer x head grid that the script replaces when it runs, so it is
  what shows when JavaScript is off or the output is untrusted (a reopened notebook strips
  scripts; a ``<noscript>`` block would show nothing there);
* embed the data as JSON inside ``<script type="application/json">`` with ``<``, ``>`` and ``&``
  escaped, and the script inserts all text with ``textContent``: a text containing ``<script>`` is
  displayed, never run.

The view opens on one head, not on the head mean (a near-uniform picture): the most important
head when the result has head importance (``attention(..., importance=True)``: the head whose
masking lowers the model's score most), else the most focused head of the first attention kind
(lowest mean entropy of its attention rows, ``head_statistics()``), the clearest pattern to start
from; the view says which and why.

Weights are stored as bytes (``round(255 * weight)``) to keep pages small; a view holds at most
``max_tokens`` tokens and ``max_texts`` texts (it says so when it crops).
"""

from __future__ import annotations

import base64
import html
import json
import re
import uuid
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from ..checks import positive_int
from ..plotting import figure_data_uri
from ..text import fold_matrix

__all__ = ["opening_head", "render_page", "render_view"]

_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "img-src data:")


@cache
def _static(name: str) -> str:
    return resources.files("explain").joinpath("static", name).read_text(encoding="utf-8")


def _json_for_script(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _bytes(block: np.ndarray) -> str:
    quantised = np.clip(np.rint(np.asarray(block, dtype=np.float64) * 255.0), 0, 255)
    return base64.b64encode(quantised.astype(np.uint8).tobytes()).decode("ascii")


def opening_head(result) -> dict[str, Any]:
    """The head the view opens on: ``kind`` (a key of ``result.maps``), ``layer`` and ``head``
    (indices into ``result.layers`` / ``result.heads``), ``where`` (``"layer 2, head 3"``,
    with the attention kind when there are several), ``reason`` (why this head, a phrase) and
    ``why`` (the sentence the view shows); see the module docstring for the rule."""
    kinds = list(result.maps)
    if result.importance is not None:
        table = result.importance.to_frame()
        if "attention" in table:
            table = table[table["attention"].isin(kinds)]
        else:
            table = table.assign(attention=kinds[0])
        top = table.sort_values("importance", ascending=False, kind="stable").iloc[0]
        why = (f"the most important head (masking it lowers the model's score by "
               f"{float(top['importance']):.3g})")
    else:
        table = result.head_statistics(attention=kinds[0]).assign(attention=kinds[0])
        top = table.sort_values("entropy", kind="stable").iloc[0]
        why = (f"the most focused head (lowest mean attention entropy, "
               f"{float(top['entropy']):.2g} nats)")
    layer, head, kind = int(top["layer"]), int(top["head"]), str(top["attention"])
    where = (f"{kind} attention, " if len(kinds) > 1 else "") + f"layer {layer}, head {head}"
    return {"kind": kind, "layer": list(result.layers).index(layer),
            "head": list(result.heads).index(head), "where": where,
            "reason": why, "why": f"Opens on {where}: {why}."}


def _title(result) -> str:
    n = len(result.texts)
    kinds = ", ".join(result.maps)
    return (f"Attention of {result.model_name}: {n} text{'s' if n != 1 else ''}, {kinds} "
            f"attention, {len(result.layers)} layers x {len(result.heads)} heads")


def _view_data(result, *, max_tokens: int, max_texts: int) -> dict[str, Any]:
    n_texts = min(len(result.texts), max_texts)
    texts = []
    for i in range(n_texts):
        maps: dict[str, Any] = {}
        cropped = []
        for kind in result.maps:
            query_side, key_side = result.sides(kind)
            full = np.asarray(result.maps[kind][i], dtype=np.float64)
            n_q, n_k = full.shape[-2:]
            q_keep, k_keep = min(n_q, max_tokens), min(n_k, max_tokens)
            if q_keep < n_q or k_keep < n_k:
                cropped.append(f"{kind}: first {q_keep} of {n_q} x {k_keep} of {n_k} tokens shown")
            levels = {}
            for level in ("token", "word"):
                block = full
                q_index = np.asarray(query_side.unit_index[i])
                k_index = np.asarray(key_side.unit_index[i])
                if level == "word":
                    block = fold_matrix(full, q_index, k_index)
                    q_units, k_units = int(q_index[q_keep - 1]) + 1, int(k_index[k_keep - 1]) + 1
                    block = block[..., :q_units, :k_units]
                else:
                    block = block[..., :q_keep, :k_keep]
                n_bq, n_bk = block.shape[-2:]
                levels[level] = {
                    "q": list(query_side.labels(i, level)[:n_bq]),
                    "k": list(key_side.labels(i, level)[:n_bk]),
                    "qs": [bool(x) for x in query_side.specials(i, level)[:n_bq]],
                    "ks": [bool(x) for x in key_side.specials(i, level)[:n_bk]],
                    "w": _bytes(block),
                }
            maps[kind] = levels
        texts.append({"text": result.texts[i], "truncated": bool(result.truncated[i]),
                      "cropped": "; ".join(cropped), "maps": maps})
    note = (f"showing the first {n_texts} of {len(result.texts)} texts"
            if n_texts < len(result.texts) else "")
    return {"title": _title(result), "note": note, "kinds": list(result.maps),
            "start": opening_head(result),
            "maxLength": result.meta.get("parameters", {}).get("max_length"),
            "layers": list(result.layers), "heads": list(result.heads), "texts": texts}


def _fallback(result) -> str:
    figure = result.plot("grid")
    return (f"<div class='ea-fallback'><p>Static picture of every head of text 1 (the "
            f"interactive view needs JavaScript; in Jupyter, trust the notebook or re-run the "
            f"cell).</p><img alt='attention of every layer and head' "
            f"src='{figure_data_uri(figure, dpi=80)}'/></div>")


def render_view(result, *, element_id: str | None = None, max_tokens: int = 128,
                max_texts: int = 16) -> str:
    """HTML fragment with the interactive view of ``result`` (inline JS/CSS, no network).

    ``element_id``: id of the view's root element (default: a fresh random id, so every display
    is independent). ``max_tokens``/``max_texts``: crop long inputs and long lists (said in the
    view).
    """
    if element_id is None:
        element_id = f"explain-attn-{uuid.uuid4().hex[:12]}"
    if not isinstance(element_id, str) or not _ID.match(element_id):
        raise ValueError(f"element_id {element_id!r} is not a valid id: use a letter followed by "
                         f"up to 63 letters, digits, '-' or '_'")
    positive_int(max_tokens, "max_tokens")
    positive_int(max_texts, "max_texts")
    data = _view_data(result, max_tokens=max_tokens, max_texts=max_texts)
    summary = html.escape(_title(result))
    return (
        f"<div class='explain-attn-wrap'><style>{_static('attention_view.css')}</style>"
        f"<div class='explain-attn' id='{element_id}' aria-label='{summary}'>"
        f"<div class='ea-title'>{summary}</div>{_fallback(result)}</div>"
        f"<script type='application/json' id='{element_id}-data'>{_json_for_script(data)}"
        f"</script>"
        f"<script>{_static('attention_view.js')}({json.dumps(element_id)});</script></div>"
    )


def render_page(result, *, max_tokens: int = 128, max_texts: int = 16) -> str:
    """One standalone, offline HTML document with the view (deterministic for a given result)."""
    element_id = f"explain-attn-{result.content_hash()}"
    title = html.escape(_title(result))
    body = render_view(result, element_id=element_id, max_tokens=max_tokens, max_texts=max_texts)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{_CSP}\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{title}</title></head><body>{body}</body></html>\n"
    )
