"""The offline interactive attention view: static checks, then headless Chromium."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

import explain
from explain.attention.view import opening_head, render_view

CHROMIUM = "/usr/bin/chromium"
HOSTILE = ['<script>window.__pwned = 1</script> bad film',
           '<img src=x onerror="window.__pwned = 2"> & "quotes"']
TEXTS = ["The film's unbelievably charming cast, sadly, cannot save it.", *HOSTILE]


@pytest.fixture
def result(tiny_bert):
    return explain.attention(tiny_bert, TEXTS)


def test_html_is_self_contained_and_escaped(result):
    page = render_view(result)
    assert "<script>window.__pwned" not in page
    assert "<img src=x" not in page
    assert "\\u003cscript\\u003ewindow.__pwned" in page      # the text travels as JSON data
    # No remote resource of any kind: no src/href/url() pointing outside the page.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "url(" not in page and "@import" not in page
    assert "class='ea-fallback'" in page and "data:image/png;base64," in page


def test_every_display_gets_its_own_ids(result):
    first, second = result._repr_html_(), result._repr_html_()
    ids = [re.search(r"id='(explain-attn-[0-9a-f]+)'", html).group(1) for html in (first, second)]
    assert ids[0] != ids[1]
    with pytest.raises(ValueError, match="not a valid id"):
        render_view(result, element_id="1 bad id")
    with pytest.raises(ValueError, match="max_tokens must be a positive int"):
        render_view(result, max_tokens=0)


def test_save_html_is_standalone_deterministic_and_atomic(result, tmp_path):
    path = result.save_html(tmp_path / "view.html")
    again = result.save_html(tmp_path / "again.html")
    assert path.read_bytes() == again.read_bytes()
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_long_input_is_cropped_and_says_so(tiny_bert):
    long = explain.attention(tiny_bert, [" ".join(["word"] * 40)])
    page = render_view(long, max_tokens=10)
    assert "first 10 of 42" in page


browser = pytest.mark.browser
needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                    reason=f"{CHROMIUM} is missing: apt-get install -y chromium")


@pytest.fixture
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            yield browser
        finally:
            browser.close()


def _open(chromium, html: str, *, javascript: bool = True):
    context = chromium.new_context(java_script_enabled=javascript,
                                   viewport={"width": 1000, "height": 900})
    page = context.new_page()
    events = {"requests": [], "errors": [], "dialogs": []}
    page.on("request", lambda request: events["requests"].append(request.url))
    page.on("console", lambda message: message.type == "error" and
            events["errors"].append(message.text))
    page.on("pageerror", lambda error: events["errors"].append(str(error)))
    page.on("dialog", lambda dialog: (events["dialogs"].append(dialog.message), dialog.dismiss()))
    page.set_content(html)
    return page, events


@browser
@needs_chromium
def test_two_views_on_one_page_work_independently(result, chromium, tmp_path):
    html = f"<html><body>{result._repr_html_()}{result._repr_html_()}</body></html>"
    page, events = _open(chromium, html)
    views = page.locator(".explain-attn")
    assert views.count() == 2
    first, second = views.nth(0), views.nth(1)
    assert first.get_attribute("data-ready") == "1" and second.get_attribute("data-ready") == "1"
    assert page.locator(".ea-fallback").count() == 0          # replaced by the live view

    # Pick layer 0, head 2 in the first view and click the query token "film".
    first.locator("select[data-control=layer]").select_option("0")
    first.locator("select[data-control=head]").select_option("2")
    assert first.get_attribute("data-layer") == "0" and first.get_attribute("data-head") == "2"
    # the second view still shows the head it opens on (the most focused one), not a mean
    start = opening_head(result)
    layer, head = result.layers[start["layer"]], result.heads[start["head"]]
    assert second.get_attribute("data-layer") == str(layer)
    assert second.get_attribute("data-head") == str(head)
    assert start["why"] in second.locator(".ea-note").inner_text()
    first.locator(".ea-left .ea-tok[data-index='2']").click()
    assert first.get_attribute("data-focus") == "query:2"
    assert second.get_attribute("data-focus") == ""
    shown = [float(first.locator(f".ea-right .ea-tok[data-index='{j}']").get_attribute(
        "data-weight")) for j in range(len(result.tokens(0)))]
    np.testing.assert_allclose(shown, result.matrix(0, layer=0, head=2)[2], atol=1 / 255 + 1e-3)
    displays = first.locator("line").evaluate_all(
        "lines => lines.map(l => [l.classList.contains('ea-active'), getComputedStyle(l).display])")
    assert any(active for active, _ in displays)
    assert all((display != "none") == active for active, display in displays)

    # The second view answers on its own, at its own layer and head.
    second.locator(".ea-right .ea-tok[data-index='1']").click()
    assert second.get_attribute("data-focus") == "key:1"
    assert first.get_attribute("data-focus") == "query:2"
    shown = [float(second.locator(f".ea-left .ea-tok[data-index='{i}']").get_attribute(
        "data-weight")) for i in range(len(result.tokens(0)))]
    np.testing.assert_allclose(shown, result.matrix(0, layer=layer, head=head)[:, 1],
                               atol=1 / 255 + 1e-3)
    page.screenshot(path=str(tmp_path / "head_view.png"), full_page=True)

    # Model view: a click on a thumbnail opens that head in the head view.
    second.locator("button[data-mode=model]").click()
    assert second.locator("canvas.ea-thumb").count() == 2 * 4
    second.locator("canvas.ea-thumb[data-layer='0'][data-head='3']").click()
    assert second.get_attribute("data-mode") == "head"
    assert second.get_attribute("data-layer") == "0" and second.get_attribute("data-head") == "3"
    assert first.get_attribute("data-mode") == "head"

    # Word level and hidden special tokens.
    first.locator("select[data-control=level]").select_option("word")
    labels = first.locator(".ea-left .ea-tok").all_text_contents()
    assert labels == list(result.words(0))
    first.locator("input[data-control=hide-special]").check()
    labels = first.locator(".ea-left .ea-tok").all_text_contents()
    assert "[CLS]" not in labels and "unbelievably" in labels

    assert events["requests"] == []
    assert events["errors"] == []
    assert events["dialogs"] == []


@browser
@needs_chromium
def test_hostile_text_is_displayed_not_run(result, chromium, tmp_path):
    path = result.save_html(tmp_path / "view.html")
    page, events = _open(chromium, path.read_text())
    view = page.locator(".explain-attn")
    for text_id in (1, 2):
        view.locator("select[data-control=text]").select_option(str(text_id))
        view.locator("select[data-control=level]").select_option("word")
        words = view.locator(".ea-left .ea-tok").all_text_contents()
        assert words == list(result.words(text_id))
        assert "<" in words
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img[src='x']").count() == 0
    assert events["dialogs"] == [] and events["errors"] == [] and events["requests"] == []
    page.screenshot(path=str(tmp_path / "hostile.png"), full_page=True)


@browser
@needs_chromium
def test_static_fallback_without_javascript(result, chromium):
    """With JavaScript off (or scripts stripped from an untrusted notebook) the picture shows."""
    page, events = _open(chromium, render_view(result), javascript=False)
    assert page.locator(".explain-attn").get_attribute("data-ready") is None
    image = page.locator(".ea-fallback img")
    assert image.count() == 1 and image.is_visible()
    assert image.evaluate("img => img.naturalWidth") > 100
    assert page.locator(".ea-controls").count() == 0
    assert events["requests"] == []


@browser
@needs_chromium
def test_notebook_output_renders_offline(chromium, tmp_path):
    """A real Jupyter kernel displays two results; their HTML outputs work in one page."""
    import nbformat
    from nbclient import NotebookClient

    cells = [
        "import explain\nfrom explain_models import tiny\nmodel = tiny.bert_classifier()",
        "explain.attention(model, ['a warm film'])",
        "explain.attention(model, ['a cold film', 'a dull one'])",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(notebook, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [cell.outputs[0]["data"] for cell in notebook.cells[1:]]
    assert all("text/html" in data for data in outputs)
    page, events = _open(chromium, "<html><body>" + "".join(d["text/html"] for d in outputs)
                         + "</body></html>")
    views = page.locator(".explain-attn")
    assert views.count() == 2
    views.nth(1).locator(".ea-left .ea-tok[data-index='1']").click()
    assert views.nth(1).get_attribute("data-focus") == "query:1"
    assert views.nth(0).get_attribute("data-focus") == ""
    assert events["requests"] == [] and events["errors"] == []
