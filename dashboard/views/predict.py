"""Predict: upload or photograph an image, see the answer and what the model looked at."""

import hashlib

import streamlit as st

from core.app import (
    EMPTY_HEATMAP,
    NONE_OF_THESE_CLASSES,
    explain_image,
    label_prediction,
    unfamiliar_warning,
)
from core.errors import CoreError
from dashboard import charts, state

st.title("Predict")
versions = state.versions_or_stop()

chosen = state.version_selector(
    versions, help="The champion answers production traffic; pick another to compare.")
class_names = next(v for v in versions if v.version == chosen).class_names
st.caption("Classes: " + ", ".join(class_names))

blocked = state.camera_blocked_reason(st.context.url)
if blocked:
    st.warning(blocked, icon=":material/no_photography:")
# On a phone the camera is the natural input: it comes first there.
use_camera = st.toggle("Use the camera", value=state.is_phone() and blocked is None,
                       disabled=blocked is not None,
                       help="Your browser asks for permission; phones allow the camera only "
                       "over HTTPS or on localhost.")
if use_camera:
    shot = st.camera_input("Take a photo")
    image_bytes, source = (shot.getvalue(), "camera") if shot else (None, None)
else:
    limits = state.config()
    upload = st.file_uploader(
        "Upload an image", type=["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"],
        help=f"JPEG, PNG, WebP, BMP, GIF or TIFF; up to {limits.max_upload_bytes / 2**20:.0f} MB "
             f"and {limits.max_image_pixels / 1e6:.0f} megapixels. Phone photos are turned "
             "upright as their camera recorded.")
    image_bytes, source = (upload.getvalue(), "upload") if upload else (None, None)

if image_bytes is None:
    st.info("Upload an image or take a photo to see the model's answer.",
            icon=":material/upload:")
    st.stop()

# Streamlit reruns the page on every interaction; predict (and log) each image once.
key = (hashlib.sha256(image_bytes).hexdigest(), chosen, source)
if st.session_state.get("explained_key") != key:
    try:
        st.session_state.explanation = explain_image(
            state.backends(), image_bytes, actor=state.current_user(),
            source=source, now=state.now(), version=chosen)
    except CoreError as error:
        st.error(f"Cannot use this image: {error}", icon=":material/broken_image:")
        st.stop()
    st.session_state.explained_key = key
explanation = st.session_state.explanation

prediction = explanation.prediction
st.subheader(f"{prediction.label} · {prediction.confidence:.1%}")
warning = unfamiliar_warning(prediction)
if warning:
    st.warning(warning, icon=":material/help:")
# The log number lets an operator find this prediction later (and tells two answers apart).
st.caption(f"Answered by version {prediction.version} in {prediction.latency_ms:.1f} ms "
           f"(decode, preprocess and inference; source: {source}; logged as prediction "
           f"#{prediction.log_id}).")
# Three columns on a laptop; Streamlit stacks them on a phone.
image_column, heat_column, chart_column = st.columns(3)
with image_column:
    st.image(explanation.image, caption="Your image (as decoded, EXIF rotation applied)",
             width="stretch")
with heat_column:
    if explanation.heatmap_empty:
        st.image(explanation.overlay, width="stretch")
        st.info(EMPTY_HEATMAP.format(name=explanation.explained_class),
                icon=":material/blur_off:")
    else:
        st.image(explanation.overlay, width="stretch",
                 caption=f"Grad-CAM for '{explanation.explained_class}': red is where the "
                         "model looked most")
with chart_column:
    st.plotly_chart(charts.probability_bars(prediction.probabilities), width="stretch")

with st.expander("Is this answer wrong? Tell the model.", icon=":material/rate_review:"):
    st.caption("Your correction is stored with this image; the next retraining learns from "
               "it, and it counts in the realized accuracy on the Drift page. If the image "
               f"is none of the classes, choose '{NONE_OF_THESE_CLASSES}': it is then kept "
               "out of training and counted as an image the model should not be asked about.")
    with st.form("feedback"):
        choices = [*class_names, NONE_OF_THESE_CLASSES]
        true_class = st.selectbox("The right class", choices,
                                  index=choices.index(prediction.label))
        if st.form_submit_button("Save the correct class"):
            try:
                label_prediction(state.backends(), prediction.log_id, true_class,
                                 actor=state.current_user(), now=state.now())
                st.success(f"Saved: the right class is {true_class}.", icon=":material/check:")
            except CoreError as error:
                st.error(str(error))
