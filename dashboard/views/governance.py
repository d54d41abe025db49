"""Governance: a person decides, on the evidence, whether a candidate replaces the champion."""

import pandas as pd
import streamlit as st

from core.app import (
    Comparison,
    DecisionDetails,
    audit_entries,
    check_audit_log,
    compare_versions,
    decide_version,
    explain_disagreements,
    explain_side_by_side,
    export_audit_log,
    find_comparison,
    gate_advice,
    list_users,
    live_evidence,
    reset_password,
    set_user_disabled,
)
from core.app.vocabulary import ANONYMOUS
from core.errors import CoreError
from dashboard import charts, i18n, phone, state
from dashboard.i18n import _, class_name, term

st.title(_("Governance"))
versions = state.versions_or_stop()
backends = state.backends()
actor = state.signed_in_actor()
champion = state.champion_of(versions)
can_decide = state.allowed("promote")

if "decision_message" in st.session_state:
    st.success(st.session_state.pop("decision_message"), icon=":material/gavel:")
st.caption(_("The champion is **v{version}**. Nothing is promoted automatically: a reviewer "
             "decides with a written reason, and every decision, refusal and piece of "
             "evidence is kept in the hash-chained audit log below.").format(
    version=champion.version))
if not can_decide:
    st.info(_("You are {name} ({role}). Reviewers promote, reject and roll back: sign in as "
              "one in the sidebar.").format(name=actor.name, role=term(actor.role)),
            icon=":material/lock:")
DATASET = champion.metadata.dataset.name


@st.cache_data(show_spinner=False, max_entries=8)
def side_by_side(artifacts: str, baseline: int, candidate: int, scenario: str | None,
                 actor: str):
    # ``artifacts`` is only a cache key: another registry's versions are other images.
    return explain_side_by_side(backends, [baseline, candidate], actor=actor, now=state.now(),
                                scenario=scenario)


def show_heatmaps(candidate: int, comparison: Comparison) -> None:
    """The same holdout images through both versions' Grad-CAM."""
    holdouts = [name for name in comparison.holdouts if name != "feedback"]
    chosen = st.selectbox(_("Images from the holdout"), holdouts, key=f"heat_{candidate}",
                          index=len(holdouts) - 1)
    scenario = chosen.split(":", 1)[1] if chosen.startswith("drifted:") else None
    with st.spinner(_("Computing Grad-CAM of both versions…")):
        samples = side_by_side(backends.artifacts.url, champion.version, candidate, scenario,
                               state.current_user())
    st.image([s.image for s in samples], width=150, caption=[true_caption(s) for s in samples])
    for number in (champion.version, candidate):
        role = term("champion" if number == champion.version else "candidate")
        st.image([s.overlays[number] for s in samples], width=150,
                 caption=[heat_caption(s, number, f"v{number} ({role})") for s in samples])


def true_caption(sample) -> str:
    return _("true: {name}").format(name=class_name(DATASET, sample.true_class))


def heat_caption(sample, version: int, who: str) -> str:
    """The prediction under an overlay; an empty map says so instead of showing none."""
    empty = (" · " + _("empty map: nothing raised its score")
             if version in sample.empty_maps else "")
    if version in sample.no_heatmaps:
        empty = " · " + _("no heatmap for this model format")
    return f"{who}: {class_name(DATASET, sample.predicted[version])}{empty}"


@st.cache_data(show_spinner=False, max_entries=8)
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
    st.markdown(_("**Live evidence** (v{candidate} beside v{champion} on real traffic)").format(
        candidate=candidate, champion=champion.version))
    if not live.paired and not live.arms:
        st.caption(_("None yet. Shadow v{n} (Traffic page, or `python -m core traffic set "
                     "--shadow {n}`) to see how it answers live requests.").format(n=candidate))
        return
    cells = st.columns(4)
    if live.paired and live.agreement is not None:
        low, high = live.agreement_ci or (0.0, 1.0)
        cells[0].metric(_("Requests seen by both"), i18n.number(live.paired))
        cells[1].metric(_("Agreement"), i18n.percent(live.agreement),
                        help=_("Wilson interval (95%): {low} – {high}.").format(
                            low=i18n.percent(low), high=i18n.percent(high)))
    if (live.labelled and live.candidate_accuracy is not None
            and live.champion_accuracy is not None):
        cells[2].metric(_("Labelled accuracy v{champion} → v{candidate}").format(
                            champion=champion.version, candidate=candidate),
                        i18n.percent(live.candidate_accuracy),
                        delta=i18n.points(live.candidate_accuracy - live.champion_accuracy),
                        help=_("On {n} labelled live requests.").format(n=live.labelled))
        cells[3].metric(_("McNemar p"), f"{live.mcnemar_p:.2g}",
                        help=_("v{champion} alone right on {champion_only}, v{candidate} "
                               "alone right on {candidate_only}.").format(
                            champion=champion.version, champion_only=live.champion_only,
                            candidate=candidate, candidate_only=live.candidate_only))
    for side in live.arms:
        accuracy = _("no labels") if side.accuracy is None else i18n.percent(side.accuracy)
        st.caption(_("Canary arm v{version}: {requests} requests, labelled accuracy "
                     "{accuracy}.").format(version=side.version, requests=side.requests,
                                           accuracy=accuracy))
    if advice is not None and advice.policy.get("live"):
        st.caption(_("With the live evidence the gate recommends **{advice}**.").format(
            advice=term(advice.recommendation)))
    elif live.paired:
        st.caption(_("The gate counts live evidence from 200 shadowed requests on."))
    if live.paired:
        names = [class_name(DATASET, name) for name in champion.class_names]
        answered = _("v{n} answered")
        left, right = st.columns([1, 1])
        with left:
            st.plotly_chart(charts.confusion_matrix(
                live.confusion, names, rows=answered.format(n=champion.version),
                columns=answered.format(n=candidate)),
                width="stretch", key=f"live_confusion_{candidate}")
            st.caption(_("Off the diagonal: the requests where they disagree."))
        with right:
            if live.disagreements and user == ANONYMOUS:
                # The disagreements are people's uploads: signed-in users only.
                st.caption(_("Sign in to see the images they disagree on."))
            elif live.disagreements:
                with st.spinner(_("Computing Grad-CAM of both versions…")):
                    samples = disagreement_gallery(backends.artifacts.url, champion.version,
                                                   candidate, tuple(live.disagreements[:4]),
                                                   user)
                st.markdown(_("**Where they disagree** (newest first)"))
                st.image([s.image for s in samples], width=100,
                         caption=[true_caption(s) for s in samples])
                for number in (champion.version, candidate):
                    st.image([s.overlays[number] for s in samples], width=100,
                             caption=[heat_caption(s, number, f"v{number}") for s in samples])
            else:
                st.caption(_("They agreed on every shadowed request."))


def decide(action: str, version: int, reason: str, override: bool) -> None:
    try:
        entry = decide_version(backends, action, version, actor=state.current_user(),
                               reason=reason, now=state.now(), override_gate=override,
                               expected_champion=champion.version)
    except CoreError as error:
        st.error(i18n.error_text(error), icon=":material/block:")
        return
    details = DecisionDetails.from_dict(entry.details)
    st.session_state["decision_message"] = _(
        "Version {version}: {from_status} → {to_status} by {actor} (audit entry {seq}).").format(
        version=version, from_status=term(details.from_status or ""),
        to_status=term(details.to_status or ""), actor=entry.actor, seq=entry.seq)
    st.rerun()


def decision_form(candidate: int, comparison: Comparison | None) -> None:
    advice = comparison.recommendation if comparison else None
    with st.form(f"decide_{candidate}"):
        reason = st.text_area(_("Reason (required; kept in the audit log)"),
                              key=f"reason_{candidate}")
        override = st.checkbox(_("I decide against the gate's advice ({advice})").format(
                                   advice=term(advice) if advice else "—"),
                               key=f"override_{candidate}",
                               help=_("Required to promote when the gate does not recommend "
                                      "it, or to reject when it does. Logged with the "
                                      "decision."))
        buttons = st.columns(2)
        promote = buttons[0].form_submit_button(_("Promote to champion"), type="primary",
                                                icon=":material/thumb_up:",
                                                disabled=comparison is None)
        reject = buttons[1].form_submit_button(_("Reject"), icon=":material/thumb_down:")
    if promote or reject:
        decide("promote" if promote else "reject", candidate, reason, override)


st.header(_("Pending candidates"))
candidates = [v for v in reversed(versions) if v.status == "candidate"]
if not candidates:
    st.info(_("No candidates are waiting. Retraining (Retrain page) produces them."),
            icon=":material/inbox:")
for candidate in candidates:
    with st.container(border=True):
        st.subheader(_("Candidate v{n}").format(n=candidate.version))
        registered = (_("Registered {at} by {who}, fine-tuned from v{parent}; test accuracy "
                        "{accuracy}.") if candidate.parent else
                      _("Registered {at} by {who}; test accuracy {accuracy}."))
        st.caption(registered.format(
            at=i18n.moment(candidate.created_at), who=candidate.created_by,
            parent=candidate.parent,
            accuracy=i18n.number(candidate.metadata.metrics["test"]["accuracy"], 4)))
        comparison = state.act(find_comparison, champion.version, candidate.version)
        if comparison is None:
            st.warning(_("v{candidate} has not been compared with the champion v{champion} on "
                         "the same holdouts, so it cannot be promoted yet.").format(
                           candidate=candidate.version, champion=champion.version),
                       icon=":material/compare_arrows:")
            if state.allowed("compare") and st.button(_("Compare with the champion"),
                                                      key=f"compare_{candidate.version}"):
                with state.shown_errors():
                    with st.spinner(_("Comparing on the clean and drifted holdouts…")):
                        compare_versions(backends, champion.version,
                                         candidate.version, actor=state.current_user(),
                                         now=state.now())
                    st.rerun()
        else:
            st.markdown(_("**Champion v{champion} versus candidate v{candidate}** on the same "
                          "holdouts:").format(champion=champion.version,
                                              candidate=candidate.version))
            state.show_comparison(comparison, DATASET)
            with st.expander(_("What each version looks at (Grad-CAM on the same images)"),
                             icon=":material/visibility:"):
                show_heatmaps(candidate.version, comparison)
        show_live(candidate.version, comparison)
        if can_decide:
            decision_form(candidate.version, comparison)
        else:
            st.caption(_("Reviewers decide here."))

st.header(_("Roll back"))
archived = [v for v in reversed(versions) if v.status == "archived"]
if not archived:
    st.caption(_("No archived versions: nothing to roll back to."))
elif not can_decide:
    st.caption(_("Archived: {versions}. Reviewers can make one the champion again.").format(
        versions=", ".join(f"v{v.version}" for v in archived)))
else:
    with st.form("rollback"):
        target = st.selectbox(_("Make this archived version the champion again"),
                              [v.version for v in archived], format_func=lambda n: f"v{n}")
        reason = st.text_input(_("Reason (required; kept in the audit log)"))
        if st.form_submit_button(_("Roll back (replaces v{n})").format(n=champion.version),
                                 icon=":material/undo:"):
            decide("rollback", target, reason, False)

entries = [entry.as_dict() for entry in audit_entries(backends, actor=state.current_user(),
                                                      now=state.now())]
st.header(_("Decision timeline"))
timeline = [e for e in entries if e["model"] == backends.model and e["version"] is not None
            and e["action"] in charts.DECISION_SYMBOLS]
if timeline:
    st.plotly_chart(charts.decision_timeline(timeline), width="stretch")

st.header(_("Audit log"))
verification = state.act(check_audit_log)
if verification.ok:
    st.success(_("Chain verified: {n} entries, none edited, deleted, inserted or reordered. "
                 "Head {head}").format(n=i18n.number(verification.entries),
                                       head=f"{verification.entries}:"
                                            f"`{verification.head_hash[:16]}…`"),
               icon=":material/verified:")
else:
    st.error(_("Chain verification FAILED:") + " "
             + i18n.core_sentence(verification.problem or ""), icon=":material/gpp_bad:")
table = pd.DataFrame([{
    "seq": e["seq"], "at": e["at"], "actor": e["actor"], "role": e["role"],
    "action": e["action"], "outcome": e["outcome"], "target": e["target"],
    "reason": e["reason"], "hash": e["hash"][:12]} for e in reversed(entries)],
    columns=["seq", "at", "actor", "role", "action", "outcome", "target", "reason", "hash"])
filters = st.columns(4)
# Streamlit's own placeholder ("Choose options") would stay English: name ours.
actions = filters[0].multiselect(_("Action"), sorted(table["action"].unique()),
                                 placeholder=_("all"))
actors = filters[1].multiselect(_("Actor"), sorted(table["actor"].unique()),
                                placeholder=_("all"))
outcomes = filters[2].multiselect(_("Outcome"), ["done", "refused"], placeholder=_("all"),
                                  format_func=i18n.shown_by(i18n.labels(["done", "refused"], term)))
search = filters[3].text_input(_("Reason or target contains"))
keep = pd.Series(True, index=table.index)
for column, wanted in (("action", actions), ("actor", actors), ("outcome", outcomes)):
    if wanted:
        keep &= table[column].isin(wanted)
if search:
    keep &= (table["reason"].str.contains(search, case=False, regex=False)
             | table["target"].str.contains(search, case=False, regex=False))
# A fixed height: a long log scrolls inside its own box, not the page.
# The entries stay as core wrote them (actions and outcomes are what logs are searched by).
st.dataframe(table[keep].rename(columns={
    "seq": _("seq"), "at": _("at"), "actor": _("actor"), "role": _("role"),
    "action": _("action"), "outcome": _("outcome"), "target": _("target"),
    "reason": _("reason"), "hash": _("hash")}), hide_index=True, width="stretch", height=400)
downloads = st.columns(2)
downloads[0].download_button(_("Export CSV"), export_audit_log(backends, "csv",
                                                              actor=state.current_user(),
                                                              now=state.now()),
                             file_name="audit.csv", mime="text/csv",
                             icon=":material/download:")
downloads[1].download_button(_("Export JSON"), export_audit_log(backends, "json",
                                                               actor=state.current_user(),
                                                               now=state.now()),
                             file_name="audit.json", mime="application/json",
                             icon=":material/download:")

if state.allowed("manage_users"):
    st.header(_("Users (admins)"))
    users = list_users(backends, actor=actor.name, now=state.now())
    st.dataframe(pd.DataFrame([{
        _("user"): u.name, _("role"): term(u.role),
        _("sign-in"): _("password") if u.password_login else "OIDC",
        _("state"): _("disabled") if u.disabled else _("active"),
        _("added"): u.created_at} for u in users]), hide_index=True, width="stretch")
    names = [u.name for u in users]
    with st.form("user_access"):
        st.markdown(_("**Disable or enable an account, or give it a new password** (audited "
                      "with your reason)"))
        cells = st.columns([1, 2])
        chosen_user = cells[0].selectbox(_("User"), names)
        why = cells[1].text_input(_("Reason (required; audited)"))
        passwords = st.columns(2)
        new_password = passwords[0].text_input(_("New password (for a reset)"), type="password",
                                           autocomplete="new-password")
        again = passwords[1].text_input(_("The new password again"), type="password",
                                    autocomplete="new-password")
        pressed = [label for label, column in zip(
            ("disable", "enable", "reset"), st.columns(3)) if column.form_submit_button(
            {"disable": _("Disable"), "enable": _("Enable"),
             "reset": _("Reset password")}[label])]
        with state.shown_errors():
            if pressed and pressed[0] == "reset":
                if new_password != again:
                    st.error(_("The two passwords differ. To fix this, type the same twice."))
                else:
                    reset_password(backends, actor=actor.name, name=chosen_user,
                                   password=new_password, reason=why, now=state.now())
                    st.success(_("{name} has a new password.").format(name=chosen_user))
            elif pressed:
                set_user_disabled(backends, actor=actor.name, name=chosen_user,
                                  disabled=pressed[0] == "disable", reason=why,
                                  now=state.now())
                st.rerun()
    phone.enrol_panel()
