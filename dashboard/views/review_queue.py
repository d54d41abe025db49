"""Review queue: label the live images most worth a label; see a version's top losses."""

from functools import partial

import streamlit as st

from core.app import label_prediction, label_queue, top_losses
from core.app.vocabulary import ANONYMOUS, NO_HEATMAP, NONE_OF_THESE_CLASSES
from core.errors import CoreError
from dashboard import i18n, state
from dashboard.i18n import _, class_name

COLUMNS = 3  # images per row on a laptop; Streamlit stacks them on a phone
BADGES = {"unfamiliar": "orange", "disagreement": "violet", "low confidence": "blue"}

st.title(_("Review queue"))
versions = state.versions_or_stop()
chosen = state.version_selector(versions, help=_("Whose traffic and holdout to review."))
version = next(v for v in versions if v.version == chosen)
class_names = version.class_names
live, holdout = st.tabs([_("Live images worth a label"), _("Top losses on the holdout")])
# A class as the reader reads it (core keeps the dataset's names).
shown = partial(class_name, version.metadata.dataset.name)


with live:
    if state.current_user() == ANONYMOUS:
        # People's uploads are shown to signed-in users only (core refuses anyone else).
        st.info(_("Sign in (sidebar) to see and label the live images people uploaded."),
                icon=":material/lock:")
        st.stop()
    try:
        queue = label_queue(state.backends(), chosen, actor=state.current_user(),
                            now=state.now(), n=12)
    except CoreError as error:
        st.error(i18n.error_text(error))
        st.stop()
    counts = ", ".join(f"{n} {_(reason)}" for reason, n in queue.counts.items())
    st.caption(_("Version {version}'s newest live predictions without a label: {scanned} "
                 "({counts}). Your label counts in the realized accuracy and in the next "
                 "retraining; '{none}' keeps an image out of training and counts it as an "
                 "image the model should not be asked about.").format(
        version=chosen, scanned=i18n.number(queue.scanned), counts=counts,
        none=shown(NONE_OF_THESE_CLASSES)))
    if queue.none_of_these:
        said = (_("People said {n} of this version's images fit none of its classes; the "
                  "out-of-distribution detector had flagged {flagged} of them as unfamiliar.")
                if queue.has_detector else
                _("People said {n} of this version's images fit none of its classes."))
        st.caption(said.format(n=queue.none_of_these, flagged=queue.none_of_these_flagged))
    if not queue.items:
        st.info(_("Nothing to label: no recent unlabelled image is unfamiliar, disagreed on "
                  "or answered with low confidence."), icon=":material/task_alt:")
    choices = [*class_names, NONE_OF_THESE_CLASSES]
    choice_labels = i18n.labels(choices, shown)
    for start in range(0, len(queue.items), COLUMNS):
        for column, item in zip(st.columns(COLUMNS), queue.items[start:start + COLUMNS]):
            # The key names the container (class st-key-queue-<id>) for the browser tests.
            with column.container(border=True, key=f"queue-{item.log_id}"):
                st.image(item.image, width="stretch")
                st.markdown(" ".join(f":{BADGES[r]}-badge[{_(r)}]" for r in item.reasons))
                answered = _("#{id} · {source} · {at}. Answered {label} ({confidence}).").format(
                    id=item.log_id, source=i18n.term(item.source), at=i18n.moment(item.at),
                    label=shown(item.label), confidence=i18n.percent(item.confidence, 0))
                if item.candidate_label:
                    answered += " " + _("Version {version} (shadow) said {label}.").format(
                        version=item.candidate, label=shown(item.candidate_label))
                if item.suggestion:
                    answered += " " + _("A visitor suggested {label}: your label confirms or "
                                        "replaces it.").format(label=shown(item.suggestion))
                st.caption(answered)
                with st.form(f"label-{item.log_id}", border=False):
                    answer = st.selectbox(_("What is it?"), choices, format_func=i18n.shown_by(choice_labels),
                                          index=choices.index(item.suggestion or item.label),
                                          key=f"answer-{item.log_id}")
                    if st.form_submit_button(_("Save the label"), icon=":material/label:"):
                        with state.shown_errors():
                            state.act(label_prediction, item.log_id, answer)
                            st.toast(_("Saved: #{id} is {label}.").format(
                                id=item.log_id, label=shown(answer)), icon=":material/check:")
                            st.rerun()

with holdout:
    st.caption(_("The version's mistakes on the comparison holdout with the highest loss (the "
                 "true class got the least probability), each with a Grad-CAM of the class it "
                 "chose. A confident mistake on a clear image is a model error; an image "
                 "that looks like what the model said may carry a wrong label."))
    key = f"top_losses_{chosen}"
    if key not in st.session_state:
        if not st.button(_("Find the top losses"), icon=":material/search:",
                         help=_("Predicts the whole holdout (a few seconds).")):
            st.stop()
        with st.spinner(_("Predicting the holdout and drawing heatmaps…")):
            try:
                st.session_state[key] = top_losses(state.backends(), chosen,
                                                   actor=state.current_user(),
                                                   now=state.now(), n=12)
            except CoreError as error:
                st.error(i18n.error_text(error))
                st.stop()
    losses = st.session_state[key]
    if not losses.heatmaps:
        st.info(_(NO_HEATMAP),
                icon=":material/layers_clear:")
    st.markdown(_("Version {version} gets **{mistakes}** of {holdout} holdout images wrong; "
                  "these have the highest loss.").format(
        version=losses.version, mistakes=i18n.number(losses.mistakes),
        holdout=i18n.number(losses.holdout)))
    for start in range(0, len(losses.losses), COLUMNS):
        for column, loss in zip(st.columns(COLUMNS), losses.losses[start:start + COLUMNS]):
            with column.container(border=True):
                st.image(loss.side_by_side, width="stretch")
                st.caption(_("Holdout #{index}: labelled **{true}**, predicted **{predicted}** "
                             "({confidence}); loss {loss}").format(
                    index=loss.index, true=shown(loss.true_class),
                    predicted=shown(loss.predicted_class),
                    confidence=i18n.percent(loss.confidence, 0),
                    loss=i18n.number(loss.loss, 2))
                    + (" · " + _("the heatmap is empty") if loss.heatmap_empty else ""))
