"""Versions: every registered model with its status, metrics and lineage."""

import json

import pandas as pd
import streamlit as st

from core.app import (
    EXPORT_FORMATS,
    build_exports,
    export_file,
    export_table,
    find_comparison,
    has_tensorboard_run,
    model_card,
    status_history,
)
from core.errors import CoreError
from dashboard import charts, state

# Where `make tensorboard` serves the runs (its default port, on this machine).
TENSORBOARD_URL = "http://localhost:6006/"

st.title("Versions")
versions = state.versions_or_stop()

rows = []
for version in reversed(versions):
    summary = version.summary()
    rows.append({
        "version": summary["version"],
        "status": summary["status"],
        "created_at": summary["created_at"],
        "created_by": summary["created_by"],
        "parent": summary["parent"],
        "architecture": summary["architecture"],
        "dataset": summary["dataset"],
        "val accuracy": summary["metrics"]["val_accuracy"],
        "test accuracy": summary["metrics"]["test_accuracy"],
        "test macro-F1": summary["metrics"]["test_macro_f1"],
        "test ECE": summary["metrics"]["test_ece"],
    })
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
             column_config={
                 "val accuracy": st.column_config.NumberColumn(format="%.4f"),
                 "test accuracy": st.column_config.NumberColumn(format="%.4f"),
                 "test macro-F1": st.column_config.NumberColumn(format="%.4f"),
                 "test ECE": st.column_config.NumberColumn(format="%.4f"),
             })

st.header("Details")
chosen = st.selectbox("Version", [v.version for v in reversed(versions)],
                      format_func=lambda n: f"v{n}")
version = next(v for v in versions if v.version == chosen)
meta = version.metadata
test = meta.metrics["test"]
columns = st.columns(4)
columns[0].metric("Status", version.status)
columns[1].metric("Test accuracy", f"{test['accuracy']:.4f}")
columns[2].metric("Test macro-F1", f"{test['macro_f1']:.4f}")
columns[3].metric("Test ECE", f"{test['ece']:.4f}")
st.markdown(
    f"**Lineage:** parent {f'v{version.parent}' if version.parent else '— (trained from scratch)'}"
    f" · **architecture** `{meta.architecture}` · **dataset** `{meta.dataset.name}` "
    f"(fingerprint `{meta.dataset.fingerprint[:19]}…`) · trained "
    f"{meta.epochs} epochs in {meta.training_seconds:.0f} s by {version.created_by}"
)



def card_file(number: int, format_: str) -> str:
    """The model card, built when the button is clicked (it measures robustness: seconds)."""
    return model_card(state.backends(), number, actor=state.current_user(),
                      now=state.now()).render(format_)


# Deferred: the card is built only on a click; on_click="ignore" keeps the page as it is.
card_html, card_md, _ = st.columns([1, 1, 2])
card_html.download_button(
    "Model card (HTML)", lambda: card_file(chosen, "html"), f"model-card-v{chosen}.html",
    "text/html", on_click="ignore", icon=":material/description:",
    help="Intended use, data, lineage, metrics, calibration, robustness to drift, "
         "out-of-distribution detection, known limits and the audited decisions.")
card_md.download_button(
    "Model card (Markdown)", lambda: card_file(chosen, "md"), f"model-card-v{chosen}.md",
    "text/markdown", on_click="ignore", icon=":material/article:")

split = st.radio("Split", ["test", "validation"], horizontal=True)
metrics = meta.metrics[split]
matrix_column, class_column = st.columns(2)
with matrix_column:
    st.subheader("Confusion matrix")
    st.plotly_chart(charts.confusion_matrix(metrics["confusion_matrix"], meta.class_names),
                    width="stretch")
with class_column:
    st.subheader("Per-class metrics")
    st.plotly_chart(charts.per_class_bars(metrics["per_class"]), width="stretch")
    st.dataframe(pd.DataFrame(metrics["per_class"]).T, width="stretch")

if version.parent is not None:
    comparison = find_comparison(state.backends(), version.parent, chosen,
                                 actor=state.current_user(), now=state.now())
    if comparison:
        st.subheader(f"Compared with its parent v{version.parent}")
        state.show_comparison(comparison)
    recipe = meta.recipe
    if recipe:
        st.markdown(f"**Recipe:** {recipe.kind}; learned from drift "
                    f"{', '.join(recipe.include) or 'none'}; data "
                    f"`{json.dumps(meta.dataset.retraining_data or {})}`")

st.subheader("Exports")
st.caption("The same model in each format a deployment may need: size, accuracy on the clean "
           "comparison holdout, agreement with the float Keras model, the largest difference "
           "of any probability from it, and the median time for one image on this machine.")
table = export_table(state.backends(), chosen, actor=state.current_user(), now=state.now())
can_export = state.allowed("export")
if table is None:
    st.info("The quantized TFLite models (dynamic range, float16, int8) and the ONNX model "
            "of this version are not built yet.", icon=":material/deployed_code:")
    if st.button("Build the exports", icon=":material/build:", disabled=not can_export,
                 help="About a minute; operators." if can_export else "Operators build them."):
        with st.spinner("Converting and measuring every export…"):
            try:
                build_exports(state.backends(), chosen, actor=state.current_user(),
                              now=state.now())
            except CoreError as error:
                st.error(str(error))
            else:
                st.rerun()
else:
    st.dataframe(charts.exports_table(table), hide_index=True, width="stretch")
    if can_export:
        # Deferred: a file is read (and its download audited) only on a click.
        for column, fmt in zip(st.columns(4) * 2, EXPORT_FORMATS):
            column.download_button(
                fmt, lambda fmt=fmt: export_file(state.backends(), chosen, fmt,
                                                 actor=state.current_user(),
                                                 now=state.now())[1],
                f"v{chosen}-" + next(row["file"] for row in table if row["format"] == fmt)
                + (".zip" if fmt == "saved_model" else ""),
                "application/octet-stream", on_click="ignore", icon=":material/download:",
                key=f"export-{fmt}")
    else:
        st.caption("Operators can download each export here (every download is audited).")

st.subheader("Training history")
st.plotly_chart(charts.training_history(meta.history), width="stretch")
if has_tensorboard_run(version):
    # TensorBoard's runs are named by folder: this version's is "<N>/tensorboard".
    st.markdown(f"TensorBoard run `{chosen}/tensorboard` (scalars per epoch, the confusion "
                f"matrix, the graph): start it with `make tensorboard`, then "
                f"[open this run]({TENSORBOARD_URL}?runFilter=%5E{chosen}%2F).")
else:
    st.caption("This version was trained before runs were written for TensorBoard.")

st.subheader("Status history")
history = [h.as_dict() for h in status_history(state.backends(), actor=state.current_user(),
                                                now=state.now()) if h.version == chosen]
st.dataframe(pd.DataFrame(history), hide_index=True, width="stretch")

with st.expander("All metadata (metadata.json)"):
    st.code(json.dumps(meta.as_dict(), indent=2), language="json")
