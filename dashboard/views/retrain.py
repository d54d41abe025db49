"""Retrain: fine-tune the champion on drifted and corrected data, in the background."""

import pandas as pd
import streamlit as st

from core.app import (
    RetrainRequest,
    cancel_job,
    find_comparison,
    get_version,
    list_jobs,
    observed_scenarios,
    start_job,
    submit_retrain,
)
from core.app.vocabulary import JOB_FINISHED, PIXEL_SCENARIOS
from dashboard import charts, i18n, state
from dashboard.i18n import _, term

st.title(_("Retrain"))
versions = state.versions_or_stop()
backends = state.backends()
champion = state.champion_of(versions)


st.caption(_("Fine-tunes the champion (v{n}) from its own weights on original training "
             "images, copies augmented with the drift seen in traffic, logged drift samples "
             "and user corrections. The result is a candidate; a person decides whether it "
             "replaces the champion.").format(n=champion.version))
seen = observed_scenarios(backends, champion.version, actor=state.current_user(),
                          now=state.now())
with st.form("retrain"):
    include = st.multiselect(_("Drift to learn from"), list(PIXEL_SCENARIOS) + ["class_shift"],
                             placeholder=_("none: original images only"),
                             default=seen, help=_("Preselected: the scenarios seen in the "
                                                  "champion's traffic."))
    use_feedback = st.checkbox(_("Include user corrections from the Predict page"), value=True)
    columns = st.columns(2)
    epochs = columns[0].number_input(_("Epochs"), min_value=1,
                                     max_value=RetrainRequest.MAX_EPOCHS,
                                     value=RetrainRequest.epochs)
    learning_rate = columns[1].number_input(_("Learning rate"), min_value=1e-6,
                                            max_value=RetrainRequest.MAX_LEARNING_RATE,
                                            value=RetrainRequest.learning_rate, format="%.5f")
    original_images = columns[0].number_input(
        _("Original images"), min_value=0, max_value=RetrainRequest.MAX_IMAGES, step=1000,
        value=RetrainRequest.original_images,
        help=_("Training images the champion learnt from, mixed back in so it keeps what it "
               "knew. Fewer: a quicker job."))
    augmented = columns[1].number_input(
        _("Augmented images per drift"), min_value=0, max_value=RetrainRequest.MAX_IMAGES,
        step=1000, value=RetrainRequest.augmented_per_scenario,
        help=_("Training images copied with each drift chosen above."))
    allowed = state.allowed("retrain")
    if not allowed:
        st.caption(_("Operators start retraining: sign in as one (sidebar)."))
    if st.form_submit_button(_("Start retraining"), type="primary", icon=":material/play_arrow:",
                             disabled=not allowed):
        with state.shown_errors():
            request = RetrainRequest(include=tuple(include), use_feedback=use_feedback,
                                     epochs=int(epochs), learning_rate=float(learning_rate),
                                     original_images=int(original_images),
                                     augmented_per_scenario=int(augmented))
            job = submit_retrain(backends, request, actor=state.current_user(),
                                 now=state.now())
            st.success(_("Queued job {id}. Its progress appears below; other pages stay usable "
                         "meanwhile.").format(id=job.id), icon=":material/schedule:")


def show_jobs() -> None:
    jobs = state.act(list_jobs)
    if not jobs:
        st.info(_("No retraining jobs yet."), icon=":material/info:")
        return
    for job in [job for job in jobs if job.status == "suggested"]:
        with st.container(border=True):
            st.markdown(_("**The monitor suggests retraining** (job {id}, {at}): drift has "
                          "been alerting for a while. Nothing runs until an operator starts "
                          "it.").format(id=job.id, at=i18n.moment(job.submitted_at)))
            if state.allowed("retrain"):
                buttons = st.columns(2)
                with state.shown_errors():
                    if buttons[0].button(_("Start job {id}").format(id=job.id), key=f"start_{job.id}",
                                         type="primary", icon=":material/play_arrow:"):
                        state.act(start_job, job.id)
                        st.rerun()
                    if buttons[1].button(_("Discard job {id}").format(id=job.id), key=f"discard_{job.id}",
                                         icon=":material/delete:"):
                        state.act(cancel_job, job.id)
                        st.rerun()
    active = [job for job in jobs if job.status not in JOB_FINISHED + ("suggested",)]
    followed = active[0] if active else jobs[0]
    st.subheader(_("Job {id}: {status}").format(id=followed.id, status=term(followed.status)))
    progress = followed.training
    if progress.started:
        loss = progress.loss
        text = _("epoch {epoch}/{epochs}, step {step}/{steps}").format(
            epoch=progress.epoch, epochs=progress.epochs, step=progress.step,
            steps=progress.steps)
        st.progress(progress.fraction, text=text + (", " + _("loss {loss}").format(
            loss=f"{loss:.3f}") if loss is not None else ""))
    if progress.history:
        st.plotly_chart(charts.training_history(list(progress.history)), width="stretch")
    if followed.error:  # core's own account of what went wrong
        st.markdown(":red[" + _("The job failed:") + "] " + i18n.core_sentence(followed.error),
                    unsafe_allow_html=True)
    if followed.status == "succeeded" and followed.result_version:
        candidate = get_version(backends, followed.result_version, actor=state.current_user(),
                                now=state.now())
        comparison = None if candidate.parent is None else find_comparison(
            backends, candidate.parent, candidate.version, actor=state.current_user(),
            now=state.now())
        st.markdown(_("Candidate **v{candidate}** registered. Champion v{parent} versus "
                      "candidate on the same holdouts:").format(candidate=candidate.version,
                                                                parent=candidate.parent))
        if comparison:
            state.show_comparison(comparison, candidate.metadata.dataset.name)
        st.page_link("views/versions.py", label=_("See it on the Versions page"),
                     icon=":material/inventory_2:")

    st.subheader(_("All jobs"))
    table = pd.DataFrame([{
        _("job"): job.id, _("status"): term(job.status), _("submitted by"): job.submitted_by,
        _("submitted at"): job.submitted_at, _("finished at"): job.finished_at,
        _("epochs"): job.params.get("epochs"),
        _("drift"): ", ".join(job.params.get("include") or []),
        _("result"): f"v{job.result_version}" if job.result_version else (job.error or ""),
    } for job in jobs])
    st.dataframe(table, hide_index=True, width="stretch", height=min(38 * (len(jobs) + 1), 300))
    for job in active if state.allowed("cancel") else []:
        if st.button(_("Cancel job {id}").format(id=job.id), key=f"cancel_{job.id}",
                     icon=":material/cancel:"):
            with state.shown_errors():
                state.act(cancel_job, job.id)
                st.rerun()


# Rerun only this part every 2 s while a job is queued or running, so the chart moves
# without blocking anything else on this page or others.
busy = any(job.status not in JOB_FINISHED + ("suggested",)
           for job in state.act(list_jobs))
st.fragment(show_jobs, run_every="2s" if busy else None)()
