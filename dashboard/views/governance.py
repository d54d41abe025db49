"""Governance: a person decides, on the evidence, whether a candidate replaces the champion."""

import pandas as pd
import streamlit as st

from core.app import (
    Comparison,
    audit_entries,
    check_audit_log,
    compare_versions,
    decide_version,
    explain_disagreements,
    explain_side_by_side,
    export_audit_log,
    find_comparison,
    gate_advice,
    live_evidence,
)
from core.errors import CoreError
from dashboard import charts, state

st.title("Governance")
versions = state.versions_or_stop()
backends = state.backends()
actor = state.signed_in_actor()
champion = state.champion_of(versions)
can_decide = state.allowed("promote")

if "decision_message" in st.session_state:
    st.success(st.session_state.pop("decision_message"), icon=":material/gavel:")
st.caption(f"The champion is **v{champion.version}**. Nothing is promoted automatically: a "
           "reviewer decides with a written reason, and every decision, refusal and piece of "
           "evidence is kept in the hash-chained audit log below.")
if not can_decide:
    st.info(f"You are {actor.name} ({actor.role}). Reviewers promote, reject and roll back: "
            "sign in as one in the sidebar.", icon=":material/lock:")


@st.cache_data(show_spinner="Computing Grad-CAM of both versions…", max_entries=8)
def side_by_side(artifacts: str, baseline: int, candidate: int, scenario: str | None,
                 actor: str):
    # ``artifacts`` is only a cache key: another registry's versions are other images.
    return explain_side_by_side(backends, [baseline, candidate], actor=actor, now=state.now(),
                                scenario=scenario)


def show_heatmaps(candidate: int, comparison: Comparison) -> None:
    """The same holdout images through both versions' Grad-CAM."""
    holdouts = [name for name in comparison.holdouts if name != "feedback"]
    chosen = st.selectbox("Images from the holdout", holdouts, key=f"heat_{candidate}",
                          index=len(holdouts) - 1)
    scenario = chosen.split(":", 1)[1] if chosen.startswith("drifted:") else None
    samples = side_by_side(backends.artifacts.url, champion.version, candidate, scenario,
                           state.current_user())
    st.image([s.image for s in samples], width=150,
             caption=[f"true: {s.true_class}" for s in samples])
    for number in (champion.version, candidate):
        role = "champion" if number == champion.version else "candidate"
        st.image([s.overlays[number] for s in samples], width=150,
                 caption=[heat_caption(s, number, f"v{number} ({role})") for s in samples])


def heat_caption(sample, version: int, who: str) -> str:
    """The prediction under an overlay; an empty map says so instead of showing none."""
    empty = " · empty map: nothing raised its score" if version in sample.empty_maps else ""
    return f"{who}: {sample.predicted[version]}{empty}"


@st.cache_data(show_spinner="Computing Grad-CAM of both versions…", max_entries=8)
def disagreement_gallery(artifacts: str, baseline: int, candidate: int, ids: tuple[int, ...],
                         actor: str):
    return explain_disagreements(backends, baseline, candidate, list(ids), actor=actor,
                                 now=state.now())


def show_live(candidate: int, comparison: Comparison | None) -> None:
    """How the candidate behaved on live traffic beside the champion (shadow, canary)."""
    user = state.current_user()
    if comparison is not None:
        advice, live = gate_advice(backends, comparison, actor=user, now=state.now())
    else:
        advice, live = None, live_evidence(backends, champion.version, candidate, actor=user,
                                           now=state.now())
    st.markdown(f"**Live evidence** (v{candidate} beside v{champion.version} on real traffic)")
    if not live.paired and not live.arms:
        st.caption(f"None yet. Shadow v{candidate} (Traffic page, or `python -m core traffic "
                   f"set --shadow {candidate}`) to see how it answers live requests.")
        return
    cells = st.columns(4)
    if live.paired:
        low, high = live.agreement_ci or (0.0, 1.0)
        cells[0].metric("Requests seen by both", live.paired)
        cells[1].metric("Agreement", f"{live.agreement:.1%}",
                        help=f"95% interval {low:.1%} – {high:.1%} (Wilson).")
    if live.labelled:
        cells[2].metric(f"Labelled accuracy v{champion.version} → v{candidate}",
                        f"{live.candidate_accuracy:.1%}",
                        delta=f"{(live.candidate_accuracy - live.champion_accuracy) * 100:+.1f}"
                              " pts", help=f"On {live.labelled} labelled live requests.")
        cells[3].metric("McNemar p", f"{live.mcnemar_p:.2g}",
                        help=f"v{champion.version} alone right on {live.champion_only}, "
                             f"v{candidate} alone right on {live.candidate_only}.")
    for side in live.arms:
        accuracy = "no labels" if side.accuracy is None else f"{side.accuracy:.1%}"
        st.caption(f"Canary arm v{side.version}: {side.requests} requests, labelled accuracy "
                   f"{accuracy}.")
    if advice is not None and advice.policy.get("live"):
        st.caption(f"With the live evidence the gate recommends **{advice.recommendation}**.")
    elif live.paired:
        st.caption("The gate counts live evidence from 200 shadowed requests on.")
    if live.paired:
        names = next(v for v in versions if v.version == champion.version).class_names
        left, right = st.columns([1, 1])
        with left:
            st.plotly_chart(charts.confusion_matrix(live.confusion, names,
                                                    rows=f"v{champion.version} answered",
                                                    columns=f"v{candidate} answered"),
                            width="stretch", key=f"live_confusion_{candidate}")
            st.caption("Off the diagonal: the requests where they disagree.")
        with right:
            if live.disagreements:
                samples = disagreement_gallery(backends.artifacts.url, champion.version,
                                               candidate, tuple(live.disagreements[:4]), user)
                st.markdown("**Where they disagree** (newest first)")
                st.image([s.image for s in samples], width=100,
                         caption=[f"true: {s.true_class}" for s in samples])
                for number in (champion.version, candidate):
                    st.image([s.overlays[number] for s in samples], width=100,
                             caption=[heat_caption(s, number, f"v{number}") for s in samples])
            else:
                st.caption("They agreed on every shadowed request.")


def decide(action: str, version: int, reason: str, override: bool) -> None:
    try:
        entry = decide_version(backends, action, version, actor=state.current_user(),
                               reason=reason, now=state.now(), override_gate=override,
                               expected_champion=champion.version)
    except CoreError as error:
        st.error(str(error), icon=":material/block:")
        return
    st.session_state["decision_message"] = (
        f"Version {version}: {entry.details['from_status']} → {entry.details['to_status']} "
        f"by {entry.actor} (audit entry {entry.seq}).")
    st.rerun()


def decision_form(candidate: int, comparison: Comparison | None) -> None:
    advice = comparison.recommendation if comparison else None
    with st.form(f"decide_{candidate}"):
        reason = st.text_area("Reason (required; kept in the audit log)",
                              key=f"reason_{candidate}")
        override = st.checkbox(f"I decide against the gate's advice ({advice})",
                               key=f"override_{candidate}",
                               help="Required to promote when the gate does not recommend "
                                    "it, or to reject when it does. Logged with the decision.")
        buttons = st.columns(2)
        promote = buttons[0].form_submit_button("Promote to champion", type="primary",
                                                icon=":material/thumb_up:",
                                                disabled=comparison is None)
        reject = buttons[1].form_submit_button("Reject", icon=":material/thumb_down:")
    if promote or reject:
        decide("promote" if promote else "reject", candidate, reason, override)


st.header("Pending candidates")
candidates = [v for v in reversed(versions) if v.status == "candidate"]
if not candidates:
    st.info("No candidates are waiting. Retraining (Retrain page) produces them.",
            icon=":material/inbox:")
for candidate in candidates:
    with st.container(border=True):
        job_note = f", fine-tuned from v{candidate.parent}" if candidate.parent else ""
        st.subheader(f"Candidate v{candidate.version}")
        st.caption(f"Registered {candidate.created_at} by {candidate.created_by}{job_note}; "
                   f"test accuracy {candidate.metadata.metric('test', 'accuracy'):.4f}.")
        comparison = find_comparison(backends, champion.version, candidate.version,
                                     actor=state.current_user(), now=state.now())
        if comparison is None:
            st.warning(f"v{candidate.version} has not been compared with the champion "
                       f"v{champion.version} on the same holdouts, so it cannot be promoted yet.",
                       icon=":material/compare_arrows:")
            if state.allowed("compare") and st.button("Compare with the champion",
                                                  key=f"compare_{candidate.version}"):
                try:
                    with st.spinner("Comparing on the clean and drifted holdouts…"):
                        compare_versions(backends, champion.version,
                                         candidate.version, actor=state.current_user(),
                                         now=state.now())
                except CoreError as error:
                    st.error(str(error))
                else:
                    st.rerun()
        else:
            st.markdown(f"**Champion v{champion.version} versus candidate "
                        f"v{candidate.version}** on the same holdouts:")
            state.show_comparison(comparison)
            with st.expander("What each version looks at (Grad-CAM on the same images)",
                             icon=":material/visibility:"):
                show_heatmaps(candidate.version, comparison)
        show_live(candidate.version, comparison)
        if can_decide:
            decision_form(candidate.version, comparison)
        else:
            st.caption("Reviewers decide here.")

st.header("Roll back")
archived = [v for v in reversed(versions) if v.status == "archived"]
if not archived:
    st.caption("No archived versions: nothing to roll back to.")
elif not can_decide:
    st.caption(f"Archived: {', '.join(f'v{v.version}' for v in archived)}. Reviewers can make "
               "one the champion again.")
else:
    with st.form("rollback"):
        target = st.selectbox("Make this archived version the champion again",
                              [v.version for v in archived], format_func=lambda n: f"v{n}")
        reason = st.text_input("Reason (required; kept in the audit log)")
        if st.form_submit_button(f"Roll back (replaces v{champion.version})",
                                 icon=":material/undo:"):
            decide("rollback", target, reason, False)

entries = [entry.as_dict() for entry in audit_entries(backends, actor=state.current_user(),
                                                      now=state.now())]
st.header("Decision timeline")
timeline = [e for e in entries if e["model"] == backends.model and e["version"] is not None
            and e["action"] in charts.DECISION_SYMBOLS]
if timeline:
    st.plotly_chart(charts.decision_timeline(timeline), width="stretch")

st.header("Audit log")
verification = check_audit_log(backends, actor=state.current_user(), now=state.now())
if verification.ok:
    st.success(f"Chain verified: {verification.entries} entries, none edited, deleted, "
               f"inserted or reordered. Head {verification.entries}:"
               f"`{verification.head_hash[:16]}…`", icon=":material/verified:")
else:
    st.error(f"Chain verification FAILED: {verification.problem}.", icon=":material/gpp_bad:")
table = pd.DataFrame([{
    "seq": e["seq"], "at": e["at"], "actor": e["actor"], "role": e["role"],
    "action": e["action"], "outcome": e["outcome"], "target": e["target"],
    "reason": e["reason"], "hash": e["hash"][:12]} for e in reversed(entries)],
    columns=["seq", "at", "actor", "role", "action", "outcome", "target", "reason", "hash"])
filters = st.columns(4)
actions = filters[0].multiselect("Action", sorted(table["action"].unique()))
actors = filters[1].multiselect("Actor", sorted(table["actor"].unique()))
outcomes = filters[2].multiselect("Outcome", ["done", "refused"])
search = filters[3].text_input("Reason or target contains")
keep = pd.Series(True, index=table.index)
for column, wanted in (("action", actions), ("actor", actors), ("outcome", outcomes)):
    if wanted:
        keep &= table[column].isin(wanted)
if search:
    keep &= (table["reason"].str.contains(search, case=False, regex=False)
             | table["target"].str.contains(search, case=False, regex=False))
# A fixed height: a long log scrolls inside its own box, not the page.
st.dataframe(table[keep], hide_index=True, width="stretch", height=400)
downloads = st.columns(2)
downloads[0].download_button("Export CSV", export_audit_log(backends, "csv",
                                                              actor=state.current_user(),
                                                              now=state.now()),
                             file_name="audit.csv", mime="text/csv",
                             icon=":material/download:")
downloads[1].download_button("Export JSON", export_audit_log(backends, "json",
                                                               actor=state.current_user(),
                                                               now=state.now()),
                             file_name="audit.json", mime="application/json",
                             icon=":material/download:")
