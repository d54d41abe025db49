"""Versions: every registered model with its status, metrics and lineage."""

import json
from functools import partial

import pandas as pd
import streamlit as st

from core.app import (
    build_exports,
    export_file,
    export_table,
    find_comparison,
    has_tensorboard_run,
    model_card,
    status_history,
)
from core.app.vocabulary import EXPORT_FORMATS
from dashboard import charts, i18n, state
from dashboard.i18n import _, class_name, term
from dashboard.register_form import show_register_form


def _exported(version: int, fmt: str) -> bytes:
    """A version's export file, read when its download button is clicked (audited)."""
    return export_file(state.backends(), version, fmt, actor=state.current_user(),
                       now=state.now())[1]


# Where `make tensorboard` serves the runs (its default port, on this machine).
TENSORBOARD_URL = "http://localhost:6006/"

st.title(_("Versions"))
show_register_form(expanded=not state.has_versions())
versions = state.versions_or_stop()

rows = []
for version in reversed(versions):
    summary = version.summary()
    rows.append({
        _("version"): summary["version"],
        _("status"): term(summary["status"]),
        _("created at"): summary["created_at"],
        _("created by"): summary["created_by"],
        _("parent"): summary["parent"],
        _("architecture"): summary["architecture"],
        _("dataset"): summary["dataset"],
        _("val accuracy"): summary["metrics"]["val_accuracy"],
        _("test accuracy"): summary["metrics"]["test_accuracy"],
        _("test macro-F1"): summary["metrics"]["test_macro_f1"],
        _("test ECE"): summary["metrics"]["test_ece"],
    })
four_digits = st.column_config.NumberColumn(format="%.4f")
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
             column_config={_("val accuracy"): four_digits, _("test accuracy"): four_digits,
                            _("test macro-F1"): four_digits, _("test ECE"): four_digits})

st.header(_("Details"))
chosen = st.selectbox(_("Version"), [v.version for v in reversed(versions)],
                      format_func=lambda n: f"v{n}")
version = next(v for v in versions if v.version == chosen)
meta = version.metadata
test = meta.metrics["test"]
columns = st.columns(4)
columns[0].metric(_("Status"), term(version.status))
columns[1].metric(_("Test accuracy"), i18n.number(test["accuracy"], 4))
columns[2].metric(_("Test macro-F1"), i18n.number(test["macro_f1"], 4))
columns[3].metric(_("Test ECE"), i18n.number(test["ece"], 4))
st.markdown(
    (_("**Lineage:** parent v{parent}").format(parent=version.parent) if version.parent
     else _("**Lineage:** no parent (trained from scratch)"))
    + " · " + _("**architecture** `{architecture}` · **dataset** `{dataset}` (fingerprint "
                "`{fingerprint}…`) · trained {epochs} epochs in {seconds} s by {who}").format(
        architecture=meta.architecture, dataset=meta.dataset.name,
        fingerprint=meta.dataset.fingerprint[:19], epochs=meta.epochs,
        seconds=i18n.number(meta.training_seconds), who=version.created_by))



def card_file(number: int, format_: str) -> str:
    """The model card, built when the button is clicked (it measures robustness: seconds)."""
    return model_card(state.backends(), number, actor=state.current_user(),
                      now=state.now()).render(format_)


# Deferred: the card is built only on a click; on_click="ignore" keeps the page as it is.
card_html, card_md = st.columns([1, 1, 2])[:2]
card_html.download_button(
    _("Model card (HTML)"), lambda: card_file(chosen, "html"), f"model-card-v{chosen}.html",
    "text/html", on_click="ignore", icon=":material/description:",
    help=_("Intended use, data, lineage, metrics, calibration, robustness to drift, "
           "out-of-distribution detection, known limits and the audited decisions. The card "
           "is written in English, like every record core keeps."))
card_md.download_button(
    _("Model card (Markdown)"), lambda: card_file(chosen, "md"), f"model-card-v{chosen}.md",
    "text/markdown", on_click="ignore", icon=":material/article:")

split = st.radio(_("Split"), ["test", "validation"], horizontal=True,
                 format_func=i18n.shown_by({"test": _("test"), "validation": _("validation")}))
metrics = meta.metrics[split]
shown = partial(class_name, meta.dataset.name)

matrix_column, class_column = st.columns(2)
with matrix_column:
    st.subheader(_("Confusion matrix"))
    st.plotly_chart(charts.confusion_matrix(metrics["confusion_matrix"],
                                            [shown(name) for name in meta.class_names]),
                    width="stretch")
with class_column:
    st.subheader(_("Per-class metrics"))
    st.plotly_chart(charts.per_class_bars(metrics["per_class"], shown), width="stretch")
    per_class = pd.DataFrame(metrics["per_class"]).T
    st.dataframe(per_class.rename(index=shown, columns={
        "precision": _("precision"), "recall": _("recall"), "f1": _("F1"),
        "support": _("support")}), width="stretch")

if version.parent is not None:
    comparison = state.act(find_comparison, version.parent, chosen)
    if comparison:
        st.subheader(_("Compared with its parent v{n}").format(n=version.parent))
        state.show_comparison(comparison, meta.dataset.name)
    recipe = meta.recipe
    if recipe:
        st.markdown(_("**Recipe:** {kind}; learned from drift {drift}; data `{data}`").format(
            kind=_(recipe.kind), drift=", ".join(recipe.include) or term("none"),
            data=json.dumps(meta.dataset.retraining_data or {})))

st.subheader(_("Exports"))
st.caption(_("The same model in each format a deployment may need: size, accuracy on the "
             "clean comparison holdout, agreement with the float Keras model, the largest "
             "difference of any probability from it, and the median time for one image on "
             "this machine."))
table = state.act(export_table, chosen)
can_export = state.allowed("export")
if table is None:
    st.info(_("The quantized TFLite models (dynamic range, float16, int8) and the ONNX model "
              "of this version are not built yet."), icon=":material/deployed_code:")
    if st.button(_("Build the exports"), icon=":material/build:", disabled=not can_export,
                 help=_("About a minute; operators.") if can_export
                 else _("Operators build them.")):
        with st.spinner(_("Converting and measuring every export…")):
            with state.shown_errors():
                build_exports(state.backends(), chosen, actor=state.current_user(),
                              now=state.now())
                st.rerun()
else:
    st.dataframe(charts.exports_table(table), hide_index=True, width="stretch")
    if can_export:
        # Deferred: a file is read (and its download audited) only on a click.
        for column, fmt in zip(st.columns(4) * 2, EXPORT_FORMATS):
            column.download_button(
                fmt, partial(_exported, chosen, fmt),
                f"v{chosen}-" + next(row["file"] for row in table if row["format"] == fmt)
                + (".zip" if fmt == "saved_model" else ""),
                "application/octet-stream", on_click="ignore", icon=":material/download:",
                key=f"export-{fmt}")
    else:
        st.caption(_("Operators can download each export here (every download is audited)."))

st.subheader(_("Training history"))
if meta.source is not None:  # registered from a file: trained elsewhere
    st.caption(_("Trained elsewhere and registered from {file} (SHA-256 {sha}…): its "
                 "training history is not part of the file.").format(
        file=meta.source["file"], sha=str(meta.source["sha256"])[7:19]))
else:
    st.plotly_chart(charts.training_history(meta.history), width="stretch")
if has_tensorboard_run(version):
    # TensorBoard's runs are named by folder: this version's is "<N>/tensorboard".
    st.markdown(_("TensorBoard run `{run}` (scalars per epoch, the confusion matrix, the "
                  "graph): start it with `make tensorboard`, then [open this run]({url}).")
                .format(run=f"{chosen}/tensorboard",
                        url=f"{TENSORBOARD_URL}?runFilter=%5E{chosen}%2F"))
else:
    st.caption(_("This version was trained before runs were written for TensorBoard."))

st.subheader(_("Status history"))
history = [h.as_dict() for h in status_history(state.backends(), actor=state.current_user(),
                                                now=state.now()) if h.version == chosen]
st.dataframe(pd.DataFrame(history).rename(columns={
    "version": _("version"), "at": _("at"), "actor": _("actor"), "role": _("role"),
    "action": _("action"), "from_status": _("from status"), "to_status": _("to status"),
    "reason": _("reason")}), hide_index=True, width="stretch")

with st.expander(_("All metadata (metadata.json)")):
    st.code(json.dumps(meta.as_dict(), indent=2), language="json")
