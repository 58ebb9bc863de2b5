"""The offline check of a report's markup: nothing it references may be outside the page.

It reads our markup, not the user's words: a URL attribute (``src``, ``href``, ``action``,
...), CSS ``url()`` / ``@import`` in a style attribute or a ``<style>`` element, or a
``<link>`` is a reference; text (escaped) and script bodies (data, never fetched) are not,
whatever they say, so a review that mentions ``src=http:`` or ``@import`` is shown, not refused.
"""

from __future__ import annotations

import html.parser
import re

__all__ = ["check_offline"]

_EXTERNAL_URL = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:|//)", re.I)  # a scheme or //host
_LOCAL_SCHEMES = ("data:", "javascript:", "about:", "blob:", "mailto:")
_URL_ATTRIBUTES = frozenset(("src", "href", "action", "formaction", "srcset", "poster", "data",
                             "background", "xlink:href", "ping", "manifest", "codebase"))
_CSS_EXTERNAL = re.compile(r"""url\(\s*['"]?\s*(?:[a-z][a-z0-9+.-]*:|//)(?!\s*data:)|@import""",
                           re.I)


class _ResourceFinder(html.parser.HTMLParser):
    """The markup's references to anything outside the page: URL attributes, ``url()`` and
    ``@import`` in style attributes and ``<style>`` elements. Text (the user's words, escaped)
    and script bodies (data, not fetched) are not references, whatever they say."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self._in_style = tag == "style"
        for name, value in attrs:
            value = value or ""
            if name in _URL_ATTRIBUTES:
                for url in (value.split(",") if name == "srcset" else [value]):
                    url = url.strip()
                    if _EXTERNAL_URL.match(url) and not url.lower().startswith(_LOCAL_SCHEMES):
                        self.found.append(f"{name}={url[:60]!r}")
            elif name == "style" and _CSS_EXTERNAL.search(value):
                self.found.append(f"style={value[:60]!r}")
        if tag == "link":
            self.found.append("<link>")

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style and _CSS_EXTERNAL.search(data):
            self.found.append(f"<style> {_CSS_EXTERNAL.search(data).group(0)!r}")


def check_offline(markup: str, what: str) -> None:
    """``ValueError`` when ``markup`` references anything outside the page (a URL attribute,
    CSS ``url()``/``@import``, ``<link>``); what the page's text says does not count."""
    finder = _ResourceFinder()
    finder.feed(markup)
    finder.close()
    if finder.found:
        raise ValueError(f"{what} references an external resource ({finder.found[0]}); a "
                         f"report must work offline: inline the resource instead")
