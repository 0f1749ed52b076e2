"""🏛️ Lifecycle: stages, the champion, gate reports before the click, rollback, history."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from promotion import PromotionError
from promotion.integrations.mlflow import sync_mlflow
from promotion.lifecycle import (
    ALLOWED_FROM,
    approval_required,
    champion_of,
    deployment_needs_approval,
    deployment_of,
    move_needs_approval,
    previous_champion,
    rollback,
    transition_model,
)
from promotion.monitoring import deployment_summary
from promotion.scopes import Scope
from promotion.scoring import Leaderboard, gate_report, gate_reports
from promotion.store import Change, StageRecord
from promotion.usecases import deploy
from promotion.vocabulary import MODES, STAGE_LADDER, STAGES, stage_of
from views._approvals import request_form, requests_panel
from views._common import (
    current_user,
    evaluation,
    leaderboard,
    may_do,
    page_title,
    plain,
    scope_and_board,
    show_notice,
    store,
    store_write,
)

#: How each move is offered, for the stages a model may be moved to (the lifecycle's table).
TARGET_LABELS = {"champion": "👑 Make Champion", "production": "✅ Promote to production",
                 "candidate": "🧪 Mark as candidate", "archived": "❌ Demote (archive)"}
#: Those stages, highest first, then archived.
TARGETS = [s for s in (*reversed(STAGE_LADDER), "archived") if s in ALLOWED_FROM]


def champion_panel(scope: Scope, stages: dict[str, StageRecord]) -> None:
    champion = champion_of(stages)
    if champion is None:
        st.info("This scope has no champion yet: gates compare candidates with chance level.")
        return
    record = stages[champion]
    st.success(f"👑 Champion: **{plain(champion)}** · version {str(record.model_sha256)[:12]} · "
               f"since {record.updated_at:%Y-%m-%d %H:%M} UTC by {plain(record.updated_by)} · "
               f"{plain(record.reason)}")


def mlflow_panel(scope: Scope) -> None:
    """The MLflow mirror of this scope: what it did last, or that it is behind."""
    settings = scope.config.mlflow
    if settings is None:
        return
    state = store().sync_state(scope.name)
    target = f"MLflow model **{plain(settings.registered_model)}**"
    if state is None:
        st.caption(f"Decisions here are mirrored to {target}; nothing mirrored yet.")
    elif state.pending:
        st.warning(f"{target} is behind the decisions made here (since "
                   f"{state.pending_since:%Y-%m-%d %H:%M} UTC): {plain(state.detail)}. "
                   "The decisions are saved; the mirror retries on the next move, or now:",
                   icon=":material/sync:")
    else:
        st.caption(f"Mirrored to {target} at {state.attempted_at:%Y-%m-%d %H:%M} UTC: "
                   f"{plain(state.detail)}")
    if state is None or state.pending:
        st.button("🔁 Sync to MLflow now", key=f"mlflow_sync:{scope.name}",
                  on_click=sync_now, args=(scope,))


def sync_now(scope: Scope) -> None:
    try:
        with store_write():
            report = sync_mlflow(store(), scope)
    except PromotionError as err:
        st.session_state["notice"] = ("error", plain(err))
        return
    st.session_state["notice"] = ("error" if report.pending else "ok", plain(report.detail))


def no_skill_warning(scope: Scope, board: Leaderboard,
                     stages: dict[str, StageRecord]) -> None:
    champion = champion_of(stages)
    names = [r.model_name for r in board.ranked if r.model_name != champion]
    if not names:
        return
    reports = gate_reports(names, "champion", board, evaluation(scope),
                                     scope.config.gates, champion)
    significant = [r for r in reports
                   if any(g.name == "significance" and g.passed for g in r.gates)]
    if significant:
        return
    tested = (f"paired bootstrap, Holm-corrected over {len(names)} models, p ≥ "
              f"{scope.config.gates.alpha:g} for every one")
    if champion is None:
        st.warning(f"**No model of this scope is significantly better than chance level** on "
                   f"the holdout ({tested}). The significance gate cannot pass; a champion "
                   "here would need an override with a reason.", icon=":material/casino:")
    else:
        st.info(f"No challenger is significantly better than the champion "
                f"{plain(champion)} ({tested}); replacing it would need an override with a "
                "reason.")


def stages_table(scope: Scope, board: Leaderboard,
                 stages: dict[str, StageRecord]) -> None:
    records = []
    for entry in scope.models:
        record = stages.get(entry.name)
        row = board.row(entry.name)
        records.append({
            "model": entry.name, "stage": stage_of(stages, entry.name),
            "composite": row.composite_score, "rank": row.rank,
            "version": (record.model_sha256 or "")[:12] if record else "",
            "current file": (row.sha256 or "")[:12],
            "since": record.updated_at if record else None,
            "by": record.updated_by if record else "", "reason": record.reason if record else "",
        })
    frame = pd.DataFrame.from_records(records)
    order = {s: i for i, s in enumerate((*reversed(STAGE_LADDER), "archived"))}
    frame = frame.sort_values(["stage", "rank"], key=lambda c: c.map(order) if c.name == "stage"
                              else c)
    st.dataframe(frame, hide_index=True, width="stretch", column_config={
        "composite": st.column_config.NumberColumn("Composite", format="%.4f"),
        "since": st.column_config.DatetimeColumn("Since (UTC)", format="YYYY-MM-DD HH:mm"),
    })


def move(scope: Scope, model_name: str, target: str) -> None:
    """Button callback: the move, with the reason and the override choice typed above it."""
    reason = str(st.session_state.get("lifecycle_reason") or "")
    board = leaderboard(scope)
    if board is None:
        return
    try:
        with store_write():
            moved = transition_model(
                store(), scope, evaluation(scope), board, model_name, target,
                actor=current_user(), reason=reason,
                override=bool(st.session_state.get("lifecycle_override")))
    except PromotionError as err:
        st.session_state["notice"] = ("error", plain(err))
        return
    now = stage_of(store().stages(scope.name), model_name)
    st.session_state["notice"] = ("ok", f"{plain(model_name)} is {now}: nothing changed."
                                  if moved is None else
                                  f"{plain(model_name)}: {moved.from_stage} → {moved.to_stage}"
                                  + (" (gates overridden)" if moved.overridden else "") + ".")


def act_panel(scope: Scope, board: Leaderboard,
              stages: dict[str, StageRecord]) -> None:
    st.subheader("Move a model")
    left, right = st.columns(2)
    # Models with a stage but no folder any more can still be archived.
    names = [r.model_name for r in board.rows] + sorted(n for n in stages if n not in board)
    model = left.selectbox("Model", names, key=f"lifecycle_model:{scope.name}",
                           format_func=lambda n: f"{n} ({stage_of(stages, n)})")
    target = right.selectbox("To stage", TARGETS, key=f"lifecycle_target:{scope.name}")
    if model is None:
        return
    if stage_of(stages, model) not in ALLOWED_FROM[target]:
        st.info(f"{plain(model)} is {stage_of(stages, model)}; it can move to "
                f"{target} only from {', '.join(sorted(ALLOWED_FROM[target]))}.")
    report = None
    if target in ("production", "champion") and model in board:
        report = gate_report(model, target, board, evaluation(scope),
                                       scope.config.gates, champion_of(stages))
        st.markdown(f"**Gate report** for {plain(model)} → {target}, against "
                    f"{plain(report.baseline)} (computed now, before any click):")
        st.dataframe(pd.DataFrame([{
            "gate": g.name, "verdict": "✅ pass" if g.passed else "❌ fail", "value": g.value,
            "threshold": g.threshold, "p-value": g.p_value, "effect": g.effect,
            "detail": g.detail} for g in report.gates]), hide_index=True, width="stretch")
    st.text_input("Reason (required, recorded)", key="lifecycle_reason")
    if report is not None and not report.passed:
        st.checkbox("Override the failing gates (recorded as an override, with the reason)",
                    key="lifecycle_override")
    overriding = report is not None and not report.passed and bool(
        st.session_state.get("lifecycle_override"))
    if move_needs_approval(scope, target, overriding):
        request_form(scope, Change("move", model, target, overriding), "lifecycle_reason",
                     key=f"move:{scope.name}")
        return
    ready = (bool(str(st.session_state.get("lifecycle_reason") or "").strip())
             and may_do("move"))
    st.button(TARGET_LABELS[target], key=f"move:{scope.name}", type="primary",
              disabled=not ready, on_click=move, args=(scope, model, target),
              help=None if ready else "Enter your name in the sidebar and a reason first")


def rollback_now(scope: Scope) -> None:
    reason = str(st.session_state.get("rollback_reason") or "")
    try:
        with store_write():
            moved = rollback(store(), scope, actor=current_user(), reason=reason)
    except PromotionError as err:
        st.session_state["notice"] = ("error", plain(err))
        return
    st.session_state["notice"] = ("ok", f"Rolled back: {plain(moved.model_name)} is champion "
                                        "again.")


def rollback_panel(scope: Scope) -> None:
    st.subheader("↩️ Rollback")
    previous = previous_champion(store(), scope.name)
    if previous is None:
        st.caption("No previous champion to roll back to.")
        return
    name, sha = previous
    st.text_input(f"Reason to restore {plain(name)} (version {str(sha)[:12]})",
                  key="rollback_reason")
    if approval_required(scope):
        request_form(scope, Change("rollback", model_name=name), "rollback_reason",
                     key=f"rollback:{scope.name}")
        return
    ready = bool(str(st.session_state.get("rollback_reason") or "").strip()) and may_do("move")
    st.button(f"↩️ Roll back to {plain(name)}", key=f"rollback:{scope.name}", disabled=not ready,
              on_click=rollback_now, args=(scope,))


SHARES = (0.05, 0.10, 0.25, 0.50, 1.00)


def deploy_now(scope: Scope) -> None:
    """Button callback: the deployment decision with its reason, then a fresh export."""
    state = st.session_state
    mode = state.get(f"deploy_mode:{scope.name}")
    try:
        with store_write():
            record, paths = deploy(
                scope.models_dir, scope.name, store(), str(mode), actor=current_user(),
                reason=str(state.get("deploy_reason") or ""),
                canary=state.get(f"deploy_canary:{scope.name}") if mode == "canary" else None,
                canary_share=(state.get(f"deploy_share:{scope.name}") if mode == "canary"
                              else None))
    except PromotionError as err:
        state["notice"] = ("error", plain(err))
        return
    state["notice"] = ("ok", "Nothing changed." if record is None else
                       f"Deployment: {plain(deployment_summary(store(), scope))}; "
                       "exported "
                       f"{plain(paths.model_cards.name)}.")


def deployment_panel(scope: Scope, stages: dict[str, StageRecord]) -> None:
    st.subheader("🚦 Deployment")
    current = deployment_of(store(), scope)
    st.caption(f"In force: {plain(deployment_summary(store(), scope))} · decided "
               f"by {plain(current.actor)}: {plain(current.reason)}")
    left, middle, right = st.columns(3)
    modes = list(MODES)
    mode = left.selectbox("Mode", modes, index=modes.index(current.mode),
                          key=f"deploy_mode:{scope.name}")
    if mode == "canary":
        challengers = sorted(n for n, r in stages.items() if r.stage == "production")
        middle.selectbox("Canary", challengers, key=f"deploy_canary:{scope.name}")
        right.selectbox("Share of requests", SHARES, index=1, format_func=lambda s: f"{s:.0%}",
                        key=f"deploy_share:{scope.name}")
    st.text_input("Reason for the deployment (required, recorded)", key="deploy_reason")
    canary, share = (st.session_state.get(f"deploy_canary:{scope.name}"),
                     st.session_state.get(f"deploy_share:{scope.name}"))
    if deployment_needs_approval(scope, current, mode, share if mode == "canary" else None):
        request_form(scope, Change("deployment", mode=mode, canary_model=canary,
                                   canary_share=share), "deploy_reason",
                     key=f"deploy:{scope.name}")
    else:
        ready = (bool(str(st.session_state.get("deploy_reason") or "").strip())
                 and may_do("deploy"))
        st.button("🚦 Deploy and export", key=f"deploy:{scope.name}", disabled=not ready,
                  on_click=deploy_now, args=(scope,))
    decided = store().deployments(scope.name)
    if decided:
        st.dataframe(pd.DataFrame([{
            "at": d.at, "mode": d.mode, "canary": d.canary_model, "share": d.canary_share,
            "by": d.actor, "reason": d.reason} for d in reversed(decided)]),
            hide_index=True, width="stretch", column_config={
                "at": st.column_config.DatetimeColumn("At (UTC)",
                                                      format="YYYY-MM-DD HH:mm:ss")})


def history_panel(scope: Scope) -> None:
    st.subheader("📜 History (append-only)")
    entries = store().history(scope.name)
    if not entries:
        st.caption("No transition yet.")
        return
    frame = pd.DataFrame([{
        "at": t.at, "model": t.model_name, "from": t.from_stage, "to": t.to_stage,
        "by": t.actor, "reason": t.reason, "override": t.overridden, "action": t.action,
        "version": (t.model_sha256 or "")[:12]} for t in reversed(entries)])
    left, middle, right = st.columns(3)
    models = left.multiselect("Models", sorted(frame["model"].unique()),
                              key=f"history_models:{scope.name}")
    to_stage = middle.multiselect("To stage", STAGES, key=f"history_to:{scope.name}")
    actors = right.multiselect("By", sorted(frame["by"].unique()),
                               key=f"history_by:{scope.name}")
    keep = pd.Series(True, index=frame.index)
    for column, chosen in (("model", models), ("to", to_stage), ("by", actors)):
        if chosen:
            keep &= frame[column].isin(chosen)
    shown = frame[keep]
    st.dataframe(shown, hide_index=True, width="stretch", column_config={
        "at": st.column_config.DatetimeColumn("At (UTC)", format="YYYY-MM-DD HH:mm:ss")})


def main() -> None:
    chosen = scope_and_board()
    if chosen is None:
        return
    scope, board = chosen
    page_title("🏛️ Lifecycle", scope)
    show_notice()
    stages = store().stages(scope.name)
    champion_panel(scope, stages)
    mlflow_panel(scope)
    no_skill_warning(scope, board, stages)
    stages_table(scope, board, stages)
    requests_panel(scope)
    act_panel(scope, board, stages)
    rollback_panel(scope)
    deployment_panel(scope, stages)
    history_panel(scope)


main()
