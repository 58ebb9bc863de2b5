"""Shared fixtures: tiny random models (built in a second) and the reference models (trained once
into $EXPLAIN_CACHE, then reused)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def family_registry():
    """The registered model families, put back as they were after the test (the registry is
    global on purpose: a user registers once per session), so a test's family never leaks
    into the next."""
    from explain import families

    saved = dict(families._REGISTERED)
    yield families
    families._REGISTERED.clear()
    families._REGISTERED.update(saved)
    families._rebuild()


@pytest.fixture
def tiny_bert():
    from explain_models import tiny

    return tiny.bert_classifier()


@pytest.fixture
def tiny_mlm():
    from explain_models import tiny

    return tiny.bert_masked_lm()


@pytest.fixture
def tiny_gpt2():
    from explain_models import tiny

    return tiny.gpt2_causal_lm()


@pytest.fixture
def tiny_mha():
    from explain_models import tiny

    return tiny.mha_transformer()


@pytest.fixture
def tiny_mlp():
    from explain_models import tiny

    return tiny.tabular_mlp()


@pytest.fixture
def tiny_cnn():
    from explain_models import tiny

    return tiny.small_cnn()


def _reference(name: str):
    import explain_models

    import explain

    return explain.load_model(explain_models.ensure(name))


@pytest.fixture(scope="session")
def sentiment_model():
    """The reference MiniLM sentiment classifier (trained on first use, minutes; then cached)."""
    return _reference("sentiment")


@pytest.fixture(scope="session")
def compas_model():
    return _reference("compas")


@pytest.fixture(scope="session")
def adult_model():
    return _reference("adult")


@pytest.fixture(scope="session")
def digits_model():
    return _reference("digits")
