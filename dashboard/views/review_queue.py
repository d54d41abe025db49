"""Review queue: label the live images most worth a label; see a version's top losses."""

import streamlit as st

from core.app import NONE_OF_THESE_CLASSES, label_prediction, label_queue, top_losses
from core.errors import CoreError
from dashboard import state

COLUMNS = 3  # images per row on a laptop; Streamlit stacks them on a phone
BADGES = {"unfamiliar": "orange", "disagreement": "violet", "low confidence": "blue"}

st.title("Review queue")
versions = state.versions_or_stop()
chosen = state.version_selector(versions, help="Whose traffic and holdout to review.")
class_names = next(v for v in versions if v.version == chosen).class_names
live, holdout = st.tabs(["Live images worth a label", "Top losses on the holdout"])

with live:
    try:
        queue = label_queue(state.backends(), chosen, actor=state.current_user(),
                            now=state.now(), n=12)
    except CoreError as error:
        st.error(str(error))
        st.stop()
    counts = ", ".join(f"{n} {reason}" for reason, n in queue.counts.items())
    st.caption(f"Version {chosen}'s newest live predictions without a label: {queue.scanned} "
               f"({counts}). Your label counts in the realized accuracy and in the next "
               f"retraining; '{NONE_OF_THESE_CLASSES}' keeps an image out of training and "
               "counts it as an image the model should not be asked about.")
    if queue.none_of_these:
        flagged = (f"; the out-of-distribution detector had flagged "
                   f"{queue.none_of_these_flagged} of them as unfamiliar"
                   if queue.has_detector else "")
        st.caption(f"People said {queue.none_of_these} of this version's images fit none of "
                   f"its classes{flagged}.")
    if not queue.items:
        st.info("Nothing to label: no recent unlabelled image is unfamiliar, disagreed on "
                "or answered with low confidence.", icon=":material/task_alt:")
    choices = [*class_names, NONE_OF_THESE_CLASSES]
    for start in range(0, len(queue.items), COLUMNS):
        for column, item in zip(st.columns(COLUMNS), queue.items[start:start + COLUMNS]):
            # The key names the container (class st-key-queue-<id>) for the browser tests.
            with column.container(border=True, key=f"queue-{item.log_id}"):
                st.image(item.image, width="stretch")
                st.markdown(" ".join(f":{BADGES[r]}-badge[{r}]" for r in item.reasons))
                other = (f" Version {item.candidate} (shadow) said {item.candidate_label}."
                         if item.candidate_label else "")
                st.caption(f"#{item.log_id} · {item.source} · {item.at[:19]} UTC. Answered "
                           f"{item.label} ({item.confidence:.0%}).{other}")
                with st.form(f"label-{item.log_id}", border=False):
                    answer = st.selectbox("What is it?", choices,
                                          index=choices.index(item.label),
                                          key=f"answer-{item.log_id}")
                    if st.form_submit_button("Save the label", icon=":material/label:"):
                        try:
                            label_prediction(state.backends(), item.log_id, answer,
                                             actor=state.current_user(), now=state.now())
                        except CoreError as error:
                            st.error(str(error))
                        else:
                            st.toast(f"Saved: #{item.log_id} is {answer}.",
                                     icon=":material/check:")
                            st.rerun()

with holdout:
    st.caption("The version's mistakes on the comparison holdout with the highest loss (the "
               "true class got the least probability), each with a Grad-CAM of the class it "
               "chose. A confident mistake on a clear image is a model error; an image that "
               "looks like what the model said may carry a wrong label.")
    key = f"top_losses_{chosen}"
    if key not in st.session_state:
        if not st.button("Find the top losses", icon=":material/search:",
                         help="Predicts the whole holdout (a few seconds)."):
            st.stop()
        with st.spinner("Predicting the holdout and drawing heatmaps…"):
            try:
                st.session_state[key] = top_losses(state.backends(), chosen,
                                                   actor=state.current_user(),
                                                   now=state.now(), n=12)
            except CoreError as error:
                st.error(str(error))
                st.stop()
    losses = st.session_state[key]
    st.markdown(f"Version {losses.version} gets **{losses.mistakes}** of {losses.holdout} "
                "holdout images wrong; these have the highest loss.")
    for start in range(0, len(losses.losses), COLUMNS):
        for column, loss in zip(st.columns(COLUMNS), losses.losses[start:start + COLUMNS]):
            with column.container(border=True):
                st.image(loss.side_by_side, width="stretch")
                st.caption(f"Holdout #{loss.index}: labelled **{loss.true_class}**, "
                           f"predicted **{loss.predicted_class}** ({loss.confidence:.0%}); "
                           f"loss {loss.loss:.2f}"
                           + (" · the heatmap is empty" if loss.heatmap_empty else ""))
