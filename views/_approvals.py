"""The Lifecycle page's four-eyes parts: a request in place of a decision that needs a second
person's approval, and the requests waiting for one (approve or reject, with a reason)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from promotion import PromotionError
from promotion.lifecycle import (
    approval_required,
    describe,
    pending_requests,
    reject_request,
    request_change,
)
from promotion.scopes import Scope
from promotion.store import Change
from promotion.usecases import approve_request
from views._common import current_user, may_do, plain, store, store_write


def request_form(scope: Scope, change: Change, reason_key: str, key: str) -> None:
    """In place of a decision's button: the manual gates' answers and **📨 Request
    approval**; the reason is the one typed for the decision (``reason_key``)."""
    st.caption("This change reaches production: a second person approves it. Answer the "
               "manual gates and request it.")
    left, right = st.columns(2)
    left.text_area("Business impact review (required)", key=f"impact:{key}", height=68)
    right.text_area("Risk assessment (required)", key=f"risk:{key}", height=68)
    state = st.session_state
    answered = all(str(state.get(k) or "").strip()
                   for k in (reason_key, f"impact:{key}", f"risk:{key}"))
    allowed = may_do("deploy" if change.kind == "deployment" else "request")
    st.button("📨 Request approval", key=f"request:{key}", type="primary",
              disabled=not (answered and allowed), on_click=_file_request,
              args=(scope, change, reason_key, key),
              help=None if answered and allowed else
              "Your role does not allow it" if not allowed else
              "Give a reason, the business impact and the risk assessment first")


def _file_request(scope: Scope, change: Change, reason_key: str, key: str) -> None:
    state = st.session_state
    try:
        with store_write():
            asked = request_change(store(), scope, change, actor=current_user(),
                                   reason=str(state.get(reason_key) or ""),
                                   business_impact=str(state.get(f"impact:{key}") or ""),
                                   risk_assessment=str(state.get(f"risk:{key}") or ""))
    except PromotionError as err:
        state["notice"] = ("error", plain(err))
        return
    state["notice"] = ("ok", f"Request #{asked.id} pending: {plain(describe(asked.change))}. "
                             "Another approver decides it under Requests.")


def _decide(scope: Scope, request_id: int, approve: bool) -> None:
    state = st.session_state
    reason = str(state.get(f"decision_reason:{request_id}") or "")
    try:
        with store_write():
            if approve:
                done = approve_request(scope.models_dir, scope.name, store(), request_id,
                                       actor=current_user(), reason=reason)
            else:
                done = reject_request(store(), scope, request_id, actor=current_user(),
                                      reason=reason)
    except PromotionError as err:
        state["notice"] = ("error", plain(err))
        return
    state["notice"] = ("ok", f"Request #{done.id} {done.status}: "
                             f"{plain(describe(done.change))}.")


def requests_panel(scope: Scope) -> None:
    """The scope's pending requests, each with approve / reject, and the decided ones;
    nothing where the scope asks for no approval and nothing is pending (local mode)."""
    pending = pending_requests(store(), scope.name)
    if not pending and not approval_required(scope):
        return
    st.subheader("📨 Requests (four eyes)")
    if not pending:
        st.caption("No request is waiting for approval.")
    approver = may_do("approve")
    for r in pending:
        with st.container(border=True):
            st.markdown(f"**#{r.id} · {plain(describe(r.change))}** · requested by "
                        f"{plain(r.requested_by)} at {r.requested_at:%Y-%m-%d %H:%M} UTC")
            st.caption(f"Reason: {plain(r.reason)} · Business impact: "
                       f"{plain(r.business_impact)} · Risk assessment: "
                       f"{plain(r.risk_assessment)}")
            own = r.requested_by.lower() == current_user().lower()
            allowed = approver and not own
            st.text_input("Reason for your decision (required, recorded)",
                          key=f"decision_reason:{r.id}", disabled=not allowed)
            ready = allowed and bool(str(st.session_state.get(f"decision_reason:{r.id}")
                                         or "").strip())
            why = ("You made this request: another approver decides it" if own else
                   "Deciding requests needs the approver role" if not approver else
                   None if ready else "Give a reason first")
            left, right = st.columns(2)
            left.button(f"✅ Approve #{r.id} and carry it out", key=f"approve:{r.id}",
                        disabled=not ready, help=why, on_click=_decide,
                        args=(scope, r.id, True))
            right.button(f"✖️ Reject #{r.id}", key=f"reject:{r.id}", disabled=not ready,
                         help=why, on_click=_decide, args=(scope, r.id, False))
    decided = [r for r in reversed(store().requests(scope.name)) if r.status != "pending"]
    if decided:
        st.dataframe(pd.DataFrame([{
            "#": r.id, "change": describe(r.change), "requested by": r.requested_by,
            "requested at": r.requested_at, "reason": r.reason,
            "business impact": r.business_impact, "risk assessment": r.risk_assessment,
            "status": r.status, "decided by": r.decided_by, "decided at": r.decided_at,
            "decision reason": r.decision_reason} for r in decided]),
            hide_index=True, width="stretch", column_config={
                c: st.column_config.DatetimeColumn(c, format="YYYY-MM-DD HH:mm:ss")
                for c in ("requested at", "decided at")})
