"""Reports in a real browser: headless Debian Chromium driven by Playwright.

Checked: the page makes no request but for itself (figures are data: URIs), nothing fails, the
console stays clean, every figure decodes, the interactive attention view answers a click,
printing hides the navigation, and an injected ``<script>`` / ``<img onerror>`` sentence shows
as text and runs nothing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pytest
from _report_demo import demo

from explain.attention import attention
from explain.report import Report

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
INJECTED = ["A fine film <script>alert('script ran')</script> indeed",
            "Dull <img src=x onerror=\"alert('onerror ran')\"> and slow"]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium "
                    f"chromium-driver` (the Makefile's test target does this)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        instance.close()


class Visit:
    """A page opened from ``path`` with every request, failure, console message and dialog
    recorded."""

    def __init__(self, browser, path: Path, *, width: int = 1200):
        self.page = browser.new_page(viewport={"width": width, "height": 900})
        self.requests: list[str] = []
        self.failed: list[str] = []
        self.console: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("requestfailed", lambda r: self.failed.append(r.url))
        self.page.on("console", lambda m: self.console.append((m.type, m.text)))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", self._dialog)
        self.url = path.resolve().as_uri()
        self.page.goto(self.url, wait_until="load")

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def assert_offline_and_clean(self):
        outside = [u for u in self.requests if u != self.url and not u.startswith("data:")]
        assert outside == [], outside
        assert self.failed == []
        assert [m for m in self.console if m[0] in ("error", "warning")] == []
        assert self.errors == []
        assert self.dialogs == []


@pytest.mark.slow
def test_demo_report_in_chromium(browser, tmp_path):
    built = demo()
    visit = Visit(browser, built.path / "index.html")
    page = visit.page
    images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, "
                           "i.getAttribute('src').slice(0, 22)])")
    assert len(images) >= 15
    for complete, width, src in images:
        assert complete and width > 0 and src.startswith("data:image/png;base64,"), (src, width)
    # every section is there, in order
    sections = page.evaluate("Array.from(document.querySelectorAll('section')).map(s => s.id)")
    assert sections == ["section-summary", "section-predictions", "section-attention",
                        "section-attributions", "section-images", "section-language",
                        "section-masked", "section-alignment", "section-fairness",
                        "section-caveats", "section-provenance"]

    # the interactive attention view answers a click on a token
    view = page.locator(".view").first
    view.scroll_into_view_if_needed()
    token = view.locator(".ea-tok[data-side='query']").nth(1)
    token.click()
    assert view.locator(".ea-line.ea-active").count() > 0
    assert view.locator("[data-locked='1']").count() == 1
    # the contents list nests the items under their sections and stays in view when scrolled
    entries = page.evaluate("[document.querySelectorAll('nav>ol>li').length, "
                            "document.querySelectorAll('nav ol ol li').length]")
    assert entries[0] == len(sections) and entries[1] > 2 * len(sections), entries
    page.evaluate("window.scrollTo(0, document.body.scrollHeight / 2)")
    assert 0 <= page.evaluate("document.querySelector('nav').getBoundingClientRect().top") < 5
    # every table fits its column (wrapped, or scrolled inside its box), data tables opened too
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    over = page.evaluate("""() => { const main = document.querySelector('main')
        .getBoundingClientRect().right + 1;
      return [document.documentElement.scrollWidth - document.documentElement.clientWidth,
              [...document.querySelectorAll('.table-wrap')].filter(w =>
                 w.getBoundingClientRect().right > main).map(w =>
                 w.querySelector('table').dataset.source || 'a table')]; }""")
    assert over == [0, []], over
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = false)")
    # printing: navigation and interactive views hidden, A4, no table wider than the page, and
    # the whole demo on fewer than 25 pages
    page.emulate_media(media="print")
    page.set_viewport_size({"width": 718, "height": 1000})  # A4 minus the margins, CSS px
    assert page.evaluate("getComputedStyle(document.querySelector('nav')).display") == "none"
    cut = page.evaluate("""() => [...document.querySelectorAll('table')].filter(t =>
        !t.closest('details:not([open])') && t.getClientRects().length &&
        getComputedStyle(t).visibility !== 'hidden' && t.getBoundingClientRect().right >
        document.documentElement.clientWidth + 1).map(t => t.dataset.source || 'a table')""")
    assert cut == [], cut
    pdf = page.pdf(format="A4", prefer_css_page_size=True)
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert 0 < pages < 25, pages
    (tmp_path / "demo-report.pdf").write_bytes(pdf)
    page.emulate_media(media="screen")
    page.set_viewport_size({"width": 1200, "height": 900})
    visit.assert_offline_and_clean()

    shots = Path(os.environ.get("EXPLAIN_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "demo-report.png"), full_page=True)
    page.close()


@pytest.mark.slow
def test_numbers_shown_equal_the_data_files(browser):
    built = demo()
    visit = Visit(browser, built.path / "index.html")
    cells = visit.page.evaluate(
        "Array.from(document.querySelectorAll('table[data-source]')).map(t => ["
        "t.getAttribute('data-source'), Array.from(t.querySelectorAll('tr[data-row]')).map(r => ["
        "+r.getAttribute('data-row'), Array.from(r.querySelectorAll('td[data-value]')).map(c => "
        "[c.getAttribute('data-column'), c.getAttribute('data-value'), c.textContent])])])")
    checked = 0
    for source, rows in cells:
        frame = pd.read_csv(built.path / source)
        for row, values in rows:
            for column, exact, shown in values:
                expected = frame.loc[row, column]
                assert float(exact) == pytest.approx(float(expected), rel=1e-12, abs=0), \
                    (source, row, column)
                if shown not in ("–", "∞", "−∞"):
                    number = float(shown.replace(",", ""))
                    assert number == pytest.approx(float(expected), rel=5e-4, abs=5e-4 * 1e-3), \
                        (source, row, column, shown)
                checked += 1
    assert checked > 100
    visit.page.close()


def test_injected_markup_shows_as_text_and_runs_nothing(browser, tmp_path, tiny_bert):
    result = attention(tiny_bert, INJECTED)
    report = Report(name="injection", title=INJECTED[0], seed=0)
    report.add_finding(INJECTED[1])
    report.add(result, section="attention", title=INJECTED[1], caption=INJECTED[0],
               plots="head_summary")
    report.add(pd.DataFrame({"text": INJECTED, "score": [0.25, 0.75]}), section="predictions",
               title="Texts")
    report.add(INJECTED[0], section="caveats")
    path = report.save(tmp_path)
    visit = Visit(browser, path / "index.html")
    page = visit.page
    text = page.evaluate("document.body.innerText")
    for sentence in INJECTED:
        assert sentence in text
    assert page.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0
    # the view's token labels carry the raw text, not markup, for each text it shows
    labels = "Array.from(document.querySelectorAll('.ea-tok')).map(t => t.textContent).join(' ')"
    assert "< script > alert" in page.evaluate(labels)
    page.select_option(".view select >> nth=0", "1")
    assert "< im ##g sr ##c = x" in page.evaluate(labels)
    visit.assert_offline_and_clean()
    page.close()
