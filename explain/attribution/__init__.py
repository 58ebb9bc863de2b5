"""Attributions: which inputs made the model say this (see explain.attribution.core)."""
