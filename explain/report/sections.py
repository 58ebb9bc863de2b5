"""The sections of a report, as data: key, heading and the caveat that qualifies their content.

The summary comes first and the caveats and provenance last; between them the content
sections, in the order they were registered. Each analysis registers the section it fills
(``explain.report.register_analysis`` does it), so its heading and caveat live beside it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["CAVEATS", "PROVENANCE", "SECTIONS", "SUMMARY", "Section", "register_section"]


@dataclass(frozen=True)
class Section:
    """A part of the report page.

    ``key``: the id used by ``Report.add(section=...)`` (lower case, ``a-z0-9_``). ``title``: its
    heading. ``caveat``: a paragraph the caveats section shows when this section has content
    (what its analyses cannot tell), or ``None``.
    """

    key: str
    title: str
    caveat: str | None = None

    def __post_init__(self):
        if not isinstance(self.key, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", self.key):
            raise ValueError(f"invalid section key {self.key!r}: use lower-case letters, digits "
                             f"and '_' (it becomes an HTML id), e.g. 'data_quality'")
        if not isinstance(self.title, str) or not self.title.strip():
            raise ValueError(f"section {self.key!r} needs a title (its heading)")


SUMMARY = Section("summary", "Summary")
CAVEATS = Section("caveats", "Caveats")
PROVENANCE = Section("provenance", "Provenance")

_HEAD = (SUMMARY,)
_TAIL = (CAVEATS, PROVENANCE)
_content: dict[str, Section] = {}
_sections: dict[str, Section] = {s.key: s for s in (*_HEAD, *_TAIL)}

#: Sections of a report, in page order: key -> ``Section`` (read-only; grows with
#: ``register_section``).
SECTIONS: Mapping[str, Section] = MappingProxyType(_sections)


def register_section(section: Section) -> Section:
    """Add ``section`` before the caveats (registering the same section again does nothing;
    another section under a known key is a ``ValueError``). Returns it."""
    if not isinstance(section, Section):
        raise TypeError(f"register_section takes an explain.report.Section, got "
                        f"{type(section).__name__}")
    known = _sections.get(section.key)
    if known == section:
        return section
    if known is not None:
        raise ValueError(f"a different section is already registered as {section.key!r} "
                         f"({known.title!r}); choose another key or reuse "
                         f"explain.report.SECTIONS[{section.key!r}]")
    _content[section.key] = section
    ordered = {s.key: s for s in (*_HEAD, *_content.values(), *_TAIL)}
    _sections.clear()
    _sections.update(ordered)
    return section
