"""Predict: upload or photograph an image, see the answer and what the model looked at."""

import hashlib
from functools import partial

import streamlit as st

from core.app import explain_image, label_prediction, unfamiliar_warning
from core.app.vocabulary import EMPTY_HEATMAP, NO_HEATMAP, NONE_OF_THESE_CLASSES
from core.errors import CoreError
from dashboard import charts, i18n, phone, state
from dashboard.i18n import _, class_name

st.title(_("Predict"))
versions = state.versions_or_stop()

chosen = state.version_selector(
    versions, help=_("The champion answers production traffic; pick another to compare."))
version = next(v for v in versions if v.version == chosen)
class_names = version.class_names
# A class as the reader reads it (the model and the log keep the dataset's name).
shown = partial(class_name, version.metadata.dataset.name)

st.caption(_("Classes:") + " " + ", ".join(map(shown, class_names)))

blocked = state.camera_blocked_reason(st.context.url)
if blocked:
    st.warning(blocked, icon=":material/no_photography:")
# On a phone the camera is the natural input: it comes first there.
use_camera = st.toggle(_("Use the camera"), value=state.is_phone() and blocked is None,
                       disabled=blocked is not None,
                       help=_("Your browser asks for permission; phones allow the camera only "
                              "over HTTPS or on localhost."))
if use_camera:
    shot = st.camera_input(_("Take a photo"))
    image_bytes, source = (shot.getvalue(), "camera") if shot else (None, None)
else:
    limits = state.config()
    upload = st.file_uploader(
        _("Upload an image"), type=["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"],
        help=_("JPEG, PNG, WebP, BMP, GIF or TIFF; up to {megabytes} MB and {megapixels} "
               "megapixels. Phone photos are turned upright as their camera recorded.").format(
            megabytes=f"{limits.max_upload_bytes / 2**20:.0f}",
            megapixels=f"{limits.max_image_pixels / 1e6:.0f}"))
    image_bytes, source = (upload.getvalue(), "upload") if upload else (None, None)

if image_bytes is None or source is None:
    st.info(_("Upload an image or take a photo to see the model's answer."),
            icon=":material/upload:")
    phone.app_link_panel()
    st.stop()

# Streamlit reruns the page on every interaction; predict (and log) each image once.
key = (hashlib.sha256(image_bytes).hexdigest(), chosen, source)
if st.session_state.get("explained_key") != key:
    try:
        st.session_state.explanation = explain_image(
            state.backends(), image_bytes, actor=state.current_user(),
            source=source, now=state.now(), version=chosen)
    except CoreError as error:
        st.error(_("Cannot use this image:") + " " + i18n.error_text(error),
                 icon=":material/broken_image:")
        st.stop()
    st.session_state.explained_key = key
explanation = st.session_state.explanation

prediction = explanation.prediction
st.subheader(f"{shown(prediction.label)} · {i18n.percent(prediction.confidence)}")
warning = unfamiliar_warning(prediction, _, shown)
if warning:
    st.warning(warning, icon=":material/help:")
# The log number lets an operator find this prediction later (and tells two answers apart).
st.caption(_("Answered by version {version} in {ms} ms (decode, preprocess and inference; "
             "source: {source}; logged as prediction #{id}).").format(
    version=prediction.version, ms=i18n.number(prediction.latency_ms, 1),
    source=i18n.term(source), id=prediction.log_id))
# Three columns on a laptop; Streamlit stacks them on a phone.
image_column, heat_column, chart_column = st.columns(3)
with image_column:
    st.image(explanation.image, caption=_("Your image (as decoded, EXIF rotation applied)"),
             width="stretch")
with heat_column:
    if explanation.heatmap is None:
        st.info(_(NO_HEATMAP),
                icon=":material/layers_clear:")
    elif explanation.heatmap_empty:
        st.image(explanation.overlay, width="stretch")
        st.info(_(EMPTY_HEATMAP).format(name=shown(explanation.explained_class)),
                icon=":material/blur_off:")
    else:
        st.image(explanation.overlay, width="stretch",
                 caption=_("Grad-CAM for '{name}': red is where the model looked most").format(
                     name=shown(explanation.explained_class)))
with chart_column:
    st.plotly_chart(charts.probability_bars(
        {shown(name): p for name, p in prediction.probabilities.items()}), width="stretch")

with st.expander(_("Is this answer wrong? Tell the model."), icon=":material/rate_review:"):
    st.caption(_("Your correction is stored with this image; the next retraining learns from "
                 "it, and it counts in the realized accuracy on the Drift page. If the image "
                 "is none of the classes, choose '{none}': it is then kept out of training "
                 "and counted as an image the model should not be asked about.").format(
        none=shown(NONE_OF_THESE_CLASSES)))
    with st.form("feedback"):
        choices = [*class_names, NONE_OF_THESE_CLASSES]
        true_class = st.selectbox(_("The right class"), choices,
                                  format_func=i18n.shown_by(i18n.labels(choices, shown)),
                                  index=choices.index(prediction.label))
        if st.form_submit_button(_("Save the correct class")):
            with state.shown_errors():
                kept = state.act(label_prediction, prediction.log_id, true_class)
                if kept.counted:
                    st.success(_("Saved: the right class is {name}.").format(
                        name=shown(true_class)), icon=":material/check:")
                else:
                    st.success(_("Thank you: {name} is kept as a suggestion. It counts once a "
                                 "signed-in user confirms it in the review queue.").format(
                        name=shown(true_class)), icon=":material/check:")
