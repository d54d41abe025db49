"""Retrain: fine-tune the champion on drifted and corrected data, in the background."""

import pandas as pd
import streamlit as st

from core.app import (
    JOB_FINISHED,
    PIXEL_SCENARIOS,
    RetrainRequest,
    cancel_job,
    find_comparison,
    get_version,
    list_jobs,
    observed_scenarios,
    start_job,
    submit_retrain,
)
from core.errors import CoreError
from dashboard import charts, state

st.title("Retrain")
versions = state.versions_or_stop()
backends = state.backends()
champion = state.champion_of(versions)


st.caption(f"Fine-tunes the champion (v{champion.version}) from its own weights on original "
           "training images, copies augmented with the drift seen in traffic, logged drift "
           "samples and user corrections. The result is a candidate; a person decides "
           "whether it replaces the champion.")
seen = observed_scenarios(backends, champion.version, actor=state.current_user(),
                          now=state.now())
with st.form("retrain"):
    include = st.multiselect("Drift to learn from", list(PIXEL_SCENARIOS) + ["class_shift"],
                             default=seen, help="Preselected: the scenarios seen in the "
                             "champion's traffic.")
    use_feedback = st.checkbox("Include user corrections from the Predict page", value=True)
    columns = st.columns(2)
    epochs = columns[0].number_input("Epochs", min_value=1, max_value=RetrainRequest.MAX_EPOCHS,
                                     value=RetrainRequest.epochs)
    learning_rate = columns[1].number_input("Learning rate", min_value=1e-6,
                                            max_value=RetrainRequest.MAX_LEARNING_RATE,
                                            value=RetrainRequest.learning_rate, format="%.5f")
    allowed = state.allowed("retrain")
    if not allowed:
        st.caption("Operators start retraining: sign in as one (sidebar).")
    if st.form_submit_button("Start retraining", type="primary", icon=":material/play_arrow:",
                             disabled=not allowed):
        try:
            request = RetrainRequest(include=tuple(include), use_feedback=use_feedback,
                                     epochs=int(epochs), learning_rate=float(learning_rate))
            job = submit_retrain(backends, request, actor=state.current_user(),
                                 now=state.now())
            st.success(f"Queued job {job.id}. Its progress appears below; other pages stay "
                       "usable meanwhile.", icon=":material/schedule:")
        except CoreError as error:
            st.error(str(error))


def show_jobs() -> None:
    jobs = list_jobs(backends, actor=state.current_user(), now=state.now())
    if not jobs:
        st.info("No retraining jobs yet.", icon=":material/info:")
        return
    for job in [job for job in jobs if job.status == "suggested"]:
        with st.container(border=True):
            st.markdown(f"**The monitor suggests retraining** (job {job.id}, "
                        f"{job.submitted_at}): drift has been alerting for a while. Nothing "
                        "runs until an operator starts it.")
            if state.allowed("retrain"):
                buttons = st.columns(2)
                try:
                    if buttons[0].button(f"Start job {job.id}", key=f"start_{job.id}",
                                         type="primary", icon=":material/play_arrow:"):
                        start_job(backends, job.id, actor=state.current_user(), now=state.now())
                        st.rerun()
                    if buttons[1].button(f"Discard job {job.id}", key=f"discard_{job.id}",
                                         icon=":material/delete:"):
                        cancel_job(backends, job.id, actor=state.current_user(), now=state.now())
                        st.rerun()
                except CoreError as error:
                    st.error(str(error))
    active = [job for job in jobs if job.status not in JOB_FINISHED + ("suggested",)]
    followed = active[0] if active else jobs[0]
    st.subheader(f"Job {followed.id}: {followed.status}")
    progress = followed.progress
    if progress.get("steps"):
        done = ((progress["epoch"] - 1) * progress["steps"] + progress["step"]) / (
            progress["epochs"] * progress["steps"])
        loss = progress.get("loss")
        st.progress(min(done, 1.0), text=f"epoch {progress['epoch']}/{progress['epochs']}, "
                    f"step {progress['step']}/{progress['steps']}"
                    + (f", loss {loss:.3f}" if loss is not None else ""))
    if progress.get("history"):
        st.plotly_chart(charts.training_history(progress["history"]), width="stretch")
    if followed.error:
        st.error(followed.error)
    if followed.status == "succeeded" and followed.result_version:
        candidate = get_version(backends, followed.result_version, actor=state.current_user(),
                                now=state.now())
        comparison = find_comparison(backends, candidate.parent, candidate.version,
                                     actor=state.current_user(), now=state.now())
        st.markdown(f"Candidate **v{candidate.version}** registered. Champion "
                    f"v{candidate.parent} versus candidate on the same holdouts:")
        if comparison:
            state.show_comparison(comparison)
        st.page_link("views/versions.py", label="See it on the Versions page",
                     icon=":material/inventory_2:")

    st.subheader("All jobs")
    table = pd.DataFrame([{
        "job": job.id, "status": job.status, "submitted by": job.submitted_by,
        "submitted at": job.submitted_at, "finished at": job.finished_at,
        "epochs": job.params.get("epochs"), "drift": ", ".join(job.params.get("include") or []),
        "result": f"v{job.result_version}" if job.result_version else (job.error or ""),
    } for job in jobs])
    st.dataframe(table, hide_index=True, width="stretch", height=min(38 * (len(jobs) + 1), 300))
    for job in active if state.allowed("cancel") else []:
        if st.button(f"Cancel job {job.id}", key=f"cancel_{job.id}", icon=":material/cancel:"):
            try:
                cancel_job(backends, job.id, actor=state.current_user(), now=state.now())
            except CoreError as error:
                st.error(str(error))
            else:
                st.rerun()


# Rerun only this part every 2 s while a job is queued or running, so the chart moves
# without blocking anything else on this page or others.
busy = any(job.status not in JOB_FINISHED + ("suggested",)
           for job in list_jobs(backends, actor=state.current_user(), now=state.now()))
st.fragment(show_jobs, run_every="2s" if busy else None)()
