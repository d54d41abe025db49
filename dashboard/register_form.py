"""The Versions page's "Register a model trained elsewhere" form (operators)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from core.app import register_model, unpack_saved_model
from core.app.vocabulary import INPUT_RANGES
from dashboard import i18n, state
from dashboard.i18n import _, term


def show_register_form(expanded: bool) -> None:
    """The form, for whoever may register; ``expanded`` when the model has no version."""
    if not state.allowed("register"):
        return
    with st.expander(_("Register a model trained elsewhere"), expanded=expanded,
                     icon=":material/upload_file:"), st.form("register", clear_on_submit=False):
        upload = st.file_uploader(_("Model file (.keras or .h5) or a zipped SavedModel folder"),
                                  type=["keras", "h5", "zip"])
        dataset = st.text_input(_("Dataset it is evaluated on"), value=state.config().dataset,
                                help=_("fashion_mnist, folder:/path/to/photos (one subfolder "
                                       "per class) or tfds:NAME, at the model's input size."))
        labels = st.text_area(_("Labels, one per line in the model's output order (empty: "
                                "the dataset's classes)"))
        value_range = st.selectbox(_("Pixel values the model expects"), list(INPUT_RANGES))
        reason = st.text_input(_("Reason (required; kept in the audit log)"))
        if not st.form_submit_button(_("Register"), type="primary",
                                     icon=":material/upload_file:"):
            return
        if upload is None:
            st.error(_("Choose a .keras or .h5 file, or a zipped SavedModel, first."),
                     icon=":material/block:")
            return
        with state.shown_errors(icon=":material/block:"), tempfile.TemporaryDirectory() as folder:
            # The file keeps its own name (the version's provenance records it); only the
            # name, never a path the browser sent.
            name = Path(upload.name).name
            if name.lower().endswith(".zip"):
                path = unpack_saved_model(upload.getvalue(), name, Path(folder))
            else:
                path = Path(folder) / name
                path.write_bytes(upload.getvalue())
            with st.spinner(_("Checking, evaluating and converting the model…")):
                result = state.act(register_model, path, dataset_spec=dataset.strip(),
                                   reason=reason,
                                   labels=[line.strip() for line in labels.splitlines()
                                           if line.strip()] or None,
                                   input_range=value_range)
            version = result.version
            st.success(_("Registered {file} as version {version} ({status}); test accuracy "
                         "{accuracy}, serving agrees with Keras on {agreement} of the test "
                         "split.").format(
                file=path.name, version=version.version, status=term(version.status),
                accuracy=i18n.number(version.metadata.metric("test", "accuracy") or 0, 4),
                agreement=f"{result.serving_agreement:.2%}"), icon=":material/check_circle:")
            if result.serving_runtime != "tflite":
                st.warning(_("The serving conversion (TFLite) changed some of its answers: "
                             "this version is served from its SavedModel by TensorFlow, "
                             "which is slower."), icon=":material/warning:")
