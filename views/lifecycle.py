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
    rollback_plan,
    serving_after,
)
from promotion.monitoring import deployment_summary
from promotion.scopes import Scope
from promotion.scoring import (
    GATE_LABELS,
    Leaderboard,
    gate_report,
    gate_reports,
    tested_together,
)
from promotion.store import Change, StageRecord
from promotion.usecases import (
    change_stage,
    deploy,
    export_scope,
    latest_weights_method,
    roll_back,
    stale_export,
)
from promotion.vocabulary import (
    MODE_HELP,
    MODE_LABELS,
    MODES,
    STAGE_LABELS,
    STAGE_LADDER,
    STAGES,
    stage_of,
)
from views._approvals import request_form, requests_panel
from views._common import (
    current_user,
    evaluation,
    may_do,
    page_title,
    plain,
    scope_and_board,
    serving_now,
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
    """The scope's one significance rule, said once: the gate table below says the same."""
    champion = champion_of(stages)
    names = tested_together(board, champion)
    if not names:
        return
    reports = gate_reports(names, "champion", board, evaluation(scope), scope.config.gates,
                           champion)
    if any(g.name == "significance" and g.passed for r in reports for g in r.gates):
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
            "model": entry.name, "stage": STAGE_LABELS[stage_of(stages, entry.name)],
            "composite": row.composite_score, "rank": row.rank,
            "version": (record.model_sha256 or "")[:8] if record else "",
            "since": f"{record.updated_at:%Y-%m-%d %H:%M}" if record else "",
            "by": record.updated_by if record else "", "reason": record.reason if record else "",
        })
    frame = pd.DataFrame.from_records(records)
    order = {STAGE_LABELS[s]: i for i, s in enumerate((*reversed(STAGE_LADDER), "archived"))}
    frame = frame.sort_values(["stage", "rank"], key=lambda c: c.map(order) if c.name == "stage"
                              else c)
    st.dataframe(frame, hide_index=True, width="stretch", column_config={
        "model": st.column_config.TextColumn("Model", width="medium"),
        "stage": st.column_config.TextColumn("Stage", width="medium"),
        "composite": st.column_config.NumberColumn("Composite", format="%.4f", width="small"),
        "rank": st.column_config.NumberColumn("Rank", width="small"),
        "version": st.column_config.TextColumn("Version", width="small"),
        "since": st.column_config.TextColumn("Since (UTC)", width="medium"),
        "by": st.column_config.TextColumn("By", width="small"),
        "reason": st.column_config.TextColumn("Reason", width="large"),
    })


def say(where: str, kind: str, text: str) -> None:
    """Leave a message for the place a click came from (shown there on the next run)."""
    st.session_state[f"said:{where}"] = (kind, text)


def show_said(where: str) -> None:
    """The message a callback left for this place, beside the button that was clicked."""
    said = st.session_state.pop(f"said:{where}", None)
    if said:
        kind, text = said
        (st.success if kind == "ok" else st.error)(text)


def move(scope: Scope, model_name: str, target: str) -> None:
    """Button callback: the move with the reason and override typed above it; a served scope
    is exported again in the same action (``change_stage``)."""
    state = st.session_state
    state.pop(f"confirm:{scope.name}", None)
    try:
        with store_write():
            moved = change_stage(scope.models_dir, scope.name, store(), model_name, target,
                                 actor=current_user(),
                                 reason=str(state.get("lifecycle_reason") or ""),
                                 override=bool(state.get("lifecycle_override")))
    except PromotionError as err:
        say("move", "error", plain(err))
        return
    state["lifecycle_reason"] = ""  # a reason is one decision's: the next needs its own
    state["lifecycle_override"] = False
    now = stage_of(store().stages(scope.name), model_name)
    done = (f"{plain(model_name)} is {now}: nothing changed." if moved is None else
            f"{plain(model_name)}: {moved.from_stage} → {moved.to_stage}"
            + (" (gates overridden)" if moved.overridden else "") + ".")
    say("move", "ok", f"{done} {plain(serving_now(scope))}")


def destructive(stages: dict[str, StageRecord], model: str, target: str) -> bool:
    """Moves that take the champion away ask to confirm first."""
    return stage_of(stages, model) == "champion" and target != "champion"


def confirm_buttons(scope: Scope, what: str, after: str, on_click, args: tuple) -> None:
    """The second step of a destructive move: what happens and what is served after it."""
    st.warning(f"{what}. After it, the engine serves: {plain(after)}",
               icon=":material/warning:")
    yes, no = st.columns([1, 1])
    yes.button("Confirm", key=f"confirm_yes:{scope.name}", type="primary", on_click=on_click,
               args=args, width="stretch")
    no.button("Cancel", key=f"confirm_no:{scope.name}", width="stretch",
              on_click=lambda: st.session_state.pop(f"confirm:{scope.name}", None))


def ask_to_confirm(scope: Scope, kind: str, model: str, target: str) -> None:
    st.session_state[f"confirm:{scope.name}"] = (kind, model, target)


def gate_table(report) -> None:
    st.markdown(f"**Gate report** for {plain(report.model_name)} → {report.target_stage}, "
                f"against {plain(report.baseline)} (computed now, before any click):")
    st.dataframe(pd.DataFrame([{
        "gate": GATE_LABELS.get(g.name, g.name), "verdict": "✅ pass" if g.passed else "❌ fail",
        "detail": g.detail} for g in report.gates]), hide_index=True, width="stretch",
        column_config={"gate": st.column_config.TextColumn("Gate", width="small"),
                       "verdict": st.column_config.TextColumn("Verdict", width="small"),
                       "detail": st.column_config.TextColumn("Detail", width="large")})


def act_panel(scope: Scope, board: Leaderboard,
              stages: dict[str, StageRecord]) -> None:
    st.subheader("Move a model")
    left, right = st.columns(2)
    # Models with a stage but no folder any more can still be archived.
    names = [r.model_name for r in board.rows] + sorted(n for n in stages if n not in board)
    model = left.selectbox("Model", names, key=f"lifecycle_model:{scope.name}",
                           format_func=lambda n: f"{n} ({stage_of(stages, n)})")
    target = right.selectbox("To stage", TARGETS, key=f"lifecycle_target:{scope.name}",
                             format_func=lambda s: STAGE_LABELS[s])
    if model is None:
        return
    allowed = stage_of(stages, model) in ALLOWED_FROM[target]
    if not allowed:
        st.info(f"{plain(model)} is {stage_of(stages, model)}; it can move to "
                f"{target} only from {', '.join(sorted(ALLOWED_FROM[target]))}.")
    report = None
    if target in ("production", "champion") and model in board:
        report = gate_report(model, target, board, evaluation(scope), scope.config.gates,
                             champion_of(stages))
        gate_table(report)
    st.text_input("Reason (required, recorded with this decision)", key="lifecycle_reason")
    if report is not None and not report.passed:
        st.checkbox("Override the failing gates (recorded as an override, with the reason)",
                    key="lifecycle_override")
    overriding = report is not None and not report.passed and bool(
        st.session_state.get("lifecycle_override"))
    if move_needs_approval(scope, target, overriding):
        request_form(scope, Change("move", model, target, overriding), "lifecycle_reason",
                     key=f"move:{scope.name}")
        return
    after = serving_after(store(), scope, [(model, target)]) if allowed else None
    confirming = st.session_state.get(f"confirm:{scope.name}")
    if confirming == ("move", model, target):
        confirm_buttons(scope, f"{TARGET_LABELS[target]}: {plain(model)} is the champion",
                        str(after), move, (scope, model, target))
    else:
        ready, why = decision_ready("lifecycle_reason")
        step = destructive(stages, model, target)
        st.button(TARGET_LABELS[target], key=f"move:{scope.name}",
                  type="primary", disabled=not ready,
                  on_click=ask_to_confirm if step else move,
                  args=(scope, "move", model, target) if step else (scope, model, target))
        if why:
            st.caption(why)
        elif after:
            st.caption(f"After this move the engine serves: {plain(after)}")
    show_said("move")


def decision_ready(reason_key: str, action: str = "move") -> tuple[bool, str]:
    """Whether a decision button may be clicked, and if not, why (shown beside it)."""
    if not current_user():
        return False, "Enter your name in the sidebar first: it is recorded with the decision."
    if not may_do(action):
        return False, "Your role does not allow this decision. Hint: ask an admin for a role."
    if not str(st.session_state.get(reason_key) or "").strip():
        return False, "Type a reason above first: every decision is recorded with its reason."
    return True, ""


def rollback_now(scope: Scope) -> None:
    state = st.session_state
    state.pop(f"confirm:{scope.name}", None)
    try:
        plan = rollback_plan(store(), scope)
        with store_write():
            roll_back(scope.models_dir, scope.name, store(), actor=current_user(),
                      reason=str(state.get("rollback_reason") or ""))
    except PromotionError as err:
        say("rollback", "error", plain(err))
        return
    state["rollback_reason"] = ""
    say("rollback", "ok", f"Rolled back: {plain(plan.describe())}. {plain(serving_now(scope))}")


def rollback_panel(scope: Scope) -> None:
    st.subheader("↩️ Rollback")
    try:
        plan = rollback_plan(store(), scope)
    except PromotionError:
        st.caption("No previous champion to roll back to.")
        show_said("rollback")
        return
    crowned = [t for t in store().history(scope.name) if t.to_stage == "champion"]
    if crowned and crowned[-1].action == "rollback":
        st.caption(f"The last change of champion was a rollback to "
                   f"{plain(crowned[-1].model_name)} ({crowned[-1].at:%Y-%m-%d %H:%M} UTC). "
                   "Rolling back again undoes that rollback.")
    after = serving_after(store(), scope, plan.moves)
    st.text(f"Rolling back: {plan.describe()}.")
    st.text_input("Reason for the rollback (required, recorded)", key="rollback_reason")
    if approval_required(scope):
        request_form(scope, Change("rollback", model_name=plan.restored), "rollback_reason",
                     key=f"rollback:{scope.name}")
        show_said("rollback")
        return
    if st.session_state.get(f"confirm:{scope.name}") == ("rollback", "", ""):
        confirm_buttons(scope, f"Roll back: {plain(plan.describe())}", after, rollback_now,
                        (scope,))
    else:
        ready, why = decision_ready("rollback_reason")
        st.button(f"↩️ Roll back to {plain(plan.restored)}", key=f"rollback:{scope.name}",
                  disabled=not ready, on_click=ask_to_confirm,
                  args=(scope, "rollback", "", ""))
        if why:
            st.caption(why)
    show_said("rollback")


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
        say("deploy", "error", plain(err))
        return
    state["deploy_reason"] = ""
    say("deploy", "ok", "Nothing changed." if record is None else
        f"Deployment: {plain(deployment_summary(store(), scope))}; exported "
        f"{plain(paths.model_cards.name)}.")


def export_now(scope: Scope) -> None:
    """Button callback: export the decisions in force, so the engine serves them."""
    try:
        with store_write():
            paths = export_scope(scope.models_dir, scope.name, store(),
                                 latest_weights_method(scope.models_dir, scope.name))
    except PromotionError as err:
        say("deploy", "error", plain(err))
        return
    say("deploy", "ok", f"Exported {plain(paths.model_cards.name)}: the engine serves the "
                        "decisions in force.")


def deployment_panel(scope: Scope, stages: dict[str, StageRecord]) -> None:
    st.subheader("🚦 Deployment")
    current = deployment_of(store(), scope)
    st.caption(f"In force: {plain(deployment_summary(store(), scope))} · decided "
               f"by {plain(current.actor)}: {plain(current.reason)}")
    stale = stale_export(scope.models_dir, scope.name, store())
    if stale:
        st.warning(f"The served export lags behind the decisions: {plain(stale)}",
                   icon=":material/sync_problem:")
        st.button("📦 Export now", key=f"export_now:{scope.name}", on_click=export_now,
                  args=(scope,))
    left, middle, right = st.columns(3)
    modes = list(MODES)
    mode = left.selectbox("Mode", modes, index=modes.index(current.mode),
                          key=f"deploy_mode:{scope.name}", format_func=MODE_LABELS.get)
    st.caption(MODE_HELP[mode])
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
        ready, why = decision_ready("deploy_reason", "deploy")
        st.button("🚦 Deploy and export", key=f"deploy:{scope.name}", disabled=not ready,
                  on_click=deploy_now, args=(scope,))
        if why:
            st.caption(why)
    show_said("deploy")
    decided = store().deployments(scope.name)
    if decided:
        st.dataframe(pd.DataFrame([{
            "at": d.at, "mode": MODE_LABELS[d.mode], "canary": d.canary_model or "",
            "share": f"{d.canary_share:.0%}" if d.canary_share is not None else "",
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
