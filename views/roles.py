"""Roles (team mode): who reads, decides, approves and administers; admins change them here."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from promotion import PromotionError
from promotion.auth import first_admins, grant_role
from promotion.vocabulary import ROLES
from views._common import current_user, may_do, plain, show_notice, store, store_write

REMOVE = "(no role: viewer)"


def save_role() -> None:
    state = st.session_state
    subject = str(state.get("role_subject") or "")
    chosen = state.get("role_choice")
    try:
        with store_write():
            grant_role(store(), subject, None if chosen == REMOVE else chosen,
                       actor=current_user())
    except PromotionError as err:
        state["notice"] = ("error", plain(err))
        return
    state["notice"] = ("ok", f"{plain(subject.strip().lower())}: "
                             f"{'no role' if chosen == REMOVE else chosen}.")


def main() -> None:
    st.title("Roles")
    show_notice()
    st.caption("viewer reads · analyst moves models, edits weights and notes, requests "
               "changes · approver also approves others' requests · admin also changes roles "
               "and deployments. An email's own role wins over its domain's (`@example.com`); "
               "anyone else is a viewer. Command-line accounts are `cli:<account>`.")
    st.caption(f"First admins (PROMOTION_ADMIN, always admin): "
               f"{plain(', '.join(sorted(first_admins())) or 'none')}")
    grants = store().roles()
    if grants:
        st.dataframe(pd.DataFrame([{"who": g.subject, "role": g.role, "by": g.granted_by,
                                    "at": g.at} for g in grants.values()]),
                     hide_index=True, width="stretch", column_config={
                         "at": st.column_config.DatetimeColumn("At (UTC)",
                                                               format="YYYY-MM-DD HH:mm")})
    allowed = may_do("roles")
    left, right = st.columns(2)
    left.text_input("Email, @domain or cli:account", key="role_subject", disabled=not allowed)
    right.selectbox("Role", [*ROLES, REMOVE], index=1, key="role_choice",
                    disabled=not allowed)
    st.button("Save role", key="save_role", type="primary", on_click=save_role,
              disabled=not (allowed and str(st.session_state.get("role_subject") or "").strip()),
              help=None if allowed else "Only an admin changes roles")


main()
