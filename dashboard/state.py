"""What pages share: configuration, the model cache, and error display."""

from __future__ import annotations

import streamlit as st

from core.config import Config, load_config
from core.lifecycle import open_registry
from core.registry import Registry
from core.serving import ModelCache


def config() -> Config:
    # Read on every run (cheap), so a changed environment is seen at once.
    return load_config()


def registry() -> Registry:
    return open_registry(config())


@st.cache_resource(show_spinner=False)
def model_cache() -> ModelCache:
    """One cache per server process: each version's model is loaded once."""
    return ModelCache()


def registry_with_versions() -> tuple[Registry, list]:
    """The registry and its versions; with no versions, says how to train one and stops."""
    current = registry()
    versions = current.list_versions()
    if not versions:
        st.info(f"The registry at `{current.root}` has no model yet. Train the baseline with "
                "`python -m core bootstrap` (about two minutes), then reload this page.",
                icon=":material/model_training:")
        st.stop()
    return current, versions


def version_selector(registry: Registry, versions: list, container=st, **options) -> int:
    """A select box of versions, newest first, defaulting to the champion."""
    labels = {v.version: f"v{v.version} · {v.status}" for v in reversed(versions)}
    champion = registry.find_champion()
    default = list(labels).index(champion.version) if champion else 0
    return container.selectbox("Model version", list(labels), format_func=labels.get,
                               index=default, **options)
