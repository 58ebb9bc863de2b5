"""The demo report of ``explain report`` with no arguments: the choice of models and its prose.

It lives at the edge, beside the command, because it names reference models (trained on first
use by their recipes, ``explain_models``), which the library never imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..report import Report, build_report, finish_sections
from ._resolve import resolve_model

__all__ = ["build_demo"]

#: The other systems of the demo, each a part after the two above: reference model, part name,
#: analyses, examples.
_SYSTEMS = (
    ("lm", "LM", ("attention", "language"), 3),
    ("mlm", "MLM", ("masked",), 3),
    ("seq2seq", "Dates", ("attention", "alignment"), 3),
    ("imagenet", "ImageNet", ("images",), 3),
    ("vit", "ViT", ("attention", "images"), 3),
)


def build_demo(*, name: str = "demo", n_examples: int = 6, seed: int = 0, quiet: bool = False,
               text_rows: int = 400, config: Mapping[str, Any] | None = None) -> Report:
    """The demo report: the reference sentiment model on ``text_rows`` held-out Rotten
    Tomatoes sentences (predictions, attention, attributions, counterfactual and SEAT probes),
    the COMPAS audit (the reference classifier and COMPAS's own decisions), then one part per
    other reference system (``_SYSTEMS``) on its held-out rows."""
    report = Report(
        name=name, seed=seed, config=config,
        title="Explanation report: the reference systems of explain",
        description="Every kind of model explain explains, each trained or loaded offline. A "
                    "MiniLM sentence classifier fine-tuned on Rotten Tomatoes review sentences "
                    "(fresh or rotten): how accurate it is, what its attention does, which words "
                    "drive its decisions, and whether identity terms move them. A recidivism "
                    "classifier trained on ProPublica's COMPAS data, audited for group fairness "
                    "next to COMPAS's own risk decisions. Then a small GPT-style language model "
                    "and a masked language model (what they predict and from which words), an "
                    "encoder-decoder that normalises spelled-out dates (its cross attention "
                    "scored against the word alignment known by construction), a pretrained "
                    "ImageNet CNN on three photos, and a vision transformer on handwritten "
                    "digits.")
    notes: dict[str, list[str]] = {}
    build_report(resolve_model("sentiment", progress=not quiet), None, text_column="text",
                 label="label", n_examples=n_examples, max_rows=text_rows, seed=seed,
                 quiet=quiet, report=report, notes=notes, part="Sentiment",
                 analyses=("predictions", "attention", "attributions", "counterfactual",
                           "association"))
    build_report(resolve_model("compas", progress=not quiet), None, label="two_year_recid",
                 sensitive=["race", "sex"], decisions=["compas_high_risk"],
                 n_examples=n_examples, seed=seed, quiet=quiet, report=report, notes=notes,
                 part="COMPAS",
                 analyses=("predictions", "attributions", "fairness", "representation"))
    for model, part, analyses, n in _SYSTEMS:
        build_report(resolve_model(model, progress=not quiet), None, n_examples=n, seed=seed,
                     quiet=quiet, report=report, notes=notes, part=part, analyses=analyses)
    finish_sections(report, notes)
    return report
