"""📈 Leaderboard: every model of the scope ranked, promote/demote per row, promoted summary."""

from __future__ import annotations

import math
from pathlib import Path

import streamlit as st

from promotion import PromotionError
from promotion.contract import ModelCard, cards_files
from promotion.export import TEXT_FIELDS, PromotedSet, ensemble_table, export_results
from promotion.lifecycle import serving_after
from promotion.metrics import get_metric, get_metric_names
from promotion.scopes import Scope
from promotion.scoring import Leaderboard, LeaderboardRow, skilled_models
from promotion.store import StageRecord
from promotion.usecases import change_stage, demote_model
from promotion.usecases import save_weights as keep_weights
from promotion.vocabulary import (
    DEFAULT_WEIGHTS_METHOD,
    PROMOTED_STAGES,
    WEIGHTS_METHOD_LABELS,
    WEIGHTS_METHODS,
    key_metric,
    stage_of,
    task_rules,
)
from views._common import (
    GROUP_LABELS,
    STAGE_BADGES,
    card_text_editor,
    current_user,
    evaluation,
    group_order,
    may_do,
    model_cards,
    page_title,
    percents_to_100,
    plain,
    scope_and_board,
    scope_problems,
    serving_now,
    show_error,
    show_notice,
    store,
    store_write,
)

PAGE_SIZE = 25
#: Widths of the table's columns; at 1280×720 with the sidebar open every cell fits one line.
COLUMNS = [0.55, 2.1, 0.75, 1.1, 1.25, 0.8, 0.7, 1.35, 1.05]


def reason_given() -> bool:
    return bool(str(st.session_state.get("decision_reason") or "").strip())


def decide(action: str, scope: Scope, model_name: str) -> None:
    """Button callback: promote or demote (a served scope is exported again in the same
    action), then say so beside the row."""
    state = st.session_state
    state.pop(f"confirm_row:{scope.name}", None)
    reason = str(state.get("decision_reason") or "")
    try:
        with store_write():
            if action == "promote":
                moved = change_stage(scope.models_dir, scope.name, store(), model_name,
                                     "production", actor=current_user(), reason=reason,
                                     override=bool(state.get("override")))
            else:
                moved = demote_model(scope.models_dir, scope.name, store(), model_name,
                                     actor=current_user(), reason=reason)
    except PromotionError as err:
        state[f"said_row:{scope.name}"] = (model_name, "error", plain(err))
        return
    state["decision_reason"] = ""  # each decision has its own reason
    state["override"] = False
    done = ("nothing changed" if moved is None else f"{moved.from_stage} → {moved.to_stage}"
            + (" (gates overridden)" if moved.overridden else ""))
    served = f" {serving_now(scope)}" if cards_files(scope.models_dir, scope.name) else ""
    state[f"said_row:{scope.name}"] = (model_name, "ok", f"{plain(model_name)}: {done}."
                                       + plain(served))


def row_message(scope: Scope, model_name: str) -> None:
    """The result of a click on this row, shown under it."""
    said = st.session_state.get(f"said_row:{scope.name}")
    if said and said[0] == model_name:
        st.session_state.pop(f"said_row:{scope.name}")
        (st.success if said[1] == "ok" else st.error)(said[2])


def confirm_demotion(scope: Scope, model_name: str) -> None:
    """Demoting the champion takes it out of serving: say what is served after, then ask."""
    if st.session_state.get(f"confirm_row:{scope.name}") != model_name:
        return
    after = serving_after(store(), scope, [(model_name, "archived")])
    st.warning(f"Demote the champion {plain(model_name)}? After it, the engine serves: "
               f"{plain(after)}", icon=":material/warning:")
    yes, no, _ = st.columns([1, 1, 4])
    yes.button("Confirm demotion", key=f"confirm_demote:{scope.name}", type="primary",
               on_click=decide, args=("demote", scope, model_name))
    no.button("Cancel", key=f"cancel_demote:{scope.name}",
              on_click=lambda: st.session_state.pop(f"confirm_row:{scope.name}", None))


def save_weights(scope: Scope, names: list[str]) -> None:
    """Slider callback: store the edited weights as the scope's next version."""
    weights = {n: float(st.session_state[f"weight:{scope.name}:{n}"]) for n in names}
    try:
        with store_write():
            saved = keep_weights(store(), scope, weights, actor=current_user() or "unknown")
        st.session_state[f"weights_version:{scope.name}"] = saved.version
    except (PromotionError, ValueError) as err:
        st.session_state["notice"] = ("error", plain(f"Weights not saved: {err}"))


def header(scope: Scope, board: Leaderboard, evaluation_note: str) -> None:
    page_title("📈 Leaderboard", scope)
    weights = ", ".join(f"{n} {w:g}" for n, w in board.weights.items())
    st.caption(f"{board.task} · {board.n_rows} holdout rows · composite = weighted mean of "
               f"{weights} (each scored 0 at chance level, 1 at perfect) · {evaluation_note}")
    alpha = scope.config.gates.alpha
    if board.ranked and not skilled_models(board, evaluation(scope), alpha):
        st.warning(
            f"**No model shows skill on this scope**: none is significantly better than "
            f"chance level (paired bootstrap, Holm-corrected over {len(board.ranked)} models, "
            f"p ≥ {alpha:g}), so the ranking order here is noise. "
            "Promoting any of these models buys no predictive skill.",
            icon=":material/casino:")


def filters(board: Leaderboard) -> list[LeaderboardRow]:
    left, middle, right = st.columns([4, 2, 1])
    groups = group_order(row.group for row in board.rows)
    chosen = left.segmented_control(
        "Groups", groups, selection_mode="multi", default=groups, key=f"groups:{board.scope}",
        format_func=lambda g: plain(GROUP_LABELS.get(g, g)))
    search = middle.text_input("Search by name", key=f"search:{board.scope}",
                               placeholder="e.g. xgboost").strip().lower()
    rows = [r for r in board.ranked if r.group in (chosen or []) and search in
            r.model_name.lower()]
    pages = max(1, math.ceil(len(rows) / PAGE_SIZE))
    page = right.number_input(f"Page (of {pages})", min_value=1, max_value=pages, value=1,
                              key=f"page:{board.scope}")
    return rows[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]


def table(scope: Scope, board: Leaderboard,
          rows: list[LeaderboardRow], stages: dict[str, StageRecord]
          ) -> None:
    key, key_label = task_rules(board.task).key_metric, task_rules(board.task).key_label
    if not get_metric(key).greater_is_better:  # RMSE: the arrow says which way is better
        key_label = f"{key_label} ↓"
    labels = ["Rank", "Model", "Phase", "Composite", "95% interval", key_label, "p95 ms",
              "Stage", "Decision"]
    for column, label in zip(st.columns(COLUMNS, gap="xsmall"), labels, strict=True):
        column.markdown(f"**{label}**")
    if not rows:
        st.info("No model matches these filters.")
    st.caption("🏆 the leader · 🤝 tied: its 95% interval overlaps the leader's · phase: 2A "
               "tree, 2B neural, 2C variant, baseline linear")
    for row in rows:
        stage = stage_of(stages, row.model_name)
        promoted = stage in PROMOTED_STAGES
        cells = st.columns(COLUMNS, vertical_alignment="center", gap="xsmall")
        cells[0].text(f"{row.rank} 🏆" if row.rank == 1 else
                      (f"{row.rank} 🤝" if row.tied_with_leader else f"{row.rank}"))
        cells[1].text(row.model_name)
        cells[2].text(row.phase)
        score = row.composite_score or 0.0
        cells[3].progress(min(max(score, 0.0), 1.0), text=f"{score:.4f}")
        low, high = row.composite_interval or (0.0, 0.0)
        cells[4].text(f"[{low:.3f}, {high:.3f}]")
        cells[5].text(key_value_text(key, row.metrics.get(key, float("nan"))))
        latency = row.metrics.get("latency_p95_ms", float("nan"))
        cells[6].text(f"{latency:.2f}" if latency < 10 else f"{latency:.1f}")
        record = stages.get(row.model_name)
        newer = record is not None and record.model_sha256 not in (None, row.sha256)
        cells[7].text((STAGE_BADGES.get(stage, stage) or "–") + (" · 🔄 new file" if newer
                                                                else ""))
        action = "demote" if promoted else "promote"
        ready = bool(may_do("move") and reason_given())
        asks_first = stage == "champion"  # taking the champion away is confirmed first
        cells[8].button(
            "Demote" if promoted else "Promote", key=f"{action}:{scope.name}:{row.model_name}",
            width="stretch",
            on_click=(lambda n: st.session_state.__setitem__(f"confirm_row:{scope.name}", n))
            if asks_first else decide,
            args=(row.model_name,) if asks_first else (action, scope, row.model_name),
            disabled=not ready, help=None if ready else why_disabled())
        confirm_demotion(scope, row.model_name)
        row_message(scope, row.model_name)


def key_value_text(key: str, value: float) -> str:
    """The key metric as the table shows it: top-5 accuracy as a percentage, AUC to four
    decimals, an error in the target's units (RMSE) to four significant digits whatever its
    scale (0.004213, 57.54, 53,211)."""
    if key == "top_5_accuracy":
        return f"{value:.1%}"
    if get_metric(key).greater_is_better or not math.isfinite(value) or value == 0:
        return f"{value:.4f}"
    decimals = max(0, 3 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}"


def why_disabled() -> str:
    """Why the decision buttons are greyed out, in words."""
    if not current_user():
        return "Enter your name in the sidebar first: it is recorded with each decision."
    if not may_do("move"):
        return "Your role does not allow moving models: ask an admin for the analyst role."
    return "Type a reason above first: each decision is recorded with its own reason."


def failed(board: Leaderboard) -> None:
    broken = [row for row in board.rows if not row.ok]
    if not broken:
        return
    with st.expander(f"⚠️ {len(broken)} model(s) could not be evaluated", expanded=True):
        for row in broken:
            st.text(f"{row.model_name}: {row.reason}")


def weights_editor(scope: Scope, board: Leaderboard) -> None:
    names = [n for n in get_metric_names(scope.task)
             if get_metric(n).kind != "info"]
    with st.expander("⚖️ Metric weights (re-rank at once; saved as a new version)"):
        saved = store().current_weights(scope.name)
        st.caption(f"Version {saved.version}, by {plain(saved.actor)}" if saved
                   else "Using the scope's default weights.")
        seen = f"weights_version:{scope.name}"
        if st.session_state.get(seen) != (saved.version if saved else 0):
            # Someone saved another version: show it instead of this session's old sliders.
            for name in names:
                st.session_state.pop(f"weight:{scope.name}:{name}", None)
            st.session_state[seen] = saved.version if saved else 0
        columns = st.columns(3)
        for i, name in enumerate(names):
            key = f"weight:{scope.name}:{name}"
            if key not in st.session_state:
                st.session_state[key] = float(board.weights.get(name, 0.0))
            columns[i % 3].slider(get_metric(name).label, 0.0, 1.0, step=0.05,
                                  key=key, on_change=save_weights, args=(scope, names),
                                  help=get_metric(name).help, disabled=not may_do("weights"))


def summary(board: Leaderboard, stages: dict[str, StageRecord]) -> None:
    st.divider()
    st.subheader("✅ Promoted Models Summary")
    promoted = [row for row in board.rows if row.model_name in stages
                and stages[row.model_name].stage in PROMOTED_STAGES]
    st.markdown(f"**Total Promoted: {len(promoted)}**")
    st.caption("The promoted set is the models in the production stage, champion included.")
    if not promoted:
        st.caption("Nothing promoted yet: click ✅ Promote on the models you choose.")
        return
    for i, row in enumerate(promoted, start=1):
        record = stages[row.model_name]
        score = f"{row.composite_score:.4f}" if row.composite_score is not None else "failed"
        why = f", because {record.reason}" if record.reason else ""
        st.text(f"{i}. {row.model_name} - Score: {score}  (by {record.updated_by}, "
                f"{record.updated_at:%Y-%m-%d %H:%M} UTC{why})")
    scores = [r.composite_score for r in promoted if r.composite_score is not None]
    count, average, best = st.columns(3)
    count.metric("Count", len(promoted))
    average.metric("Avg Score", f"{sum(scores) / len(scores):.4f}" if scores else "–")
    best.metric("Best", f"{max(scores):.4f}" if scores else "–")


def cards_section(scope: Scope, board: Leaderboard,
                  stages: dict[str, StageRecord]) -> None:
    st.divider()
    st.subheader("🎫 Model cards and export")
    promoted = [n for n, r in stages.items() if r.stage in PROMOTED_STAGES]
    left, right = st.columns([2, 3], vertical_alignment="bottom")
    method = left.segmented_control(
        "Ensemble weights", list(WEIGHTS_METHODS), default=DEFAULT_WEIGHTS_METHOD,
        key=f"method:{scope.name}",
        format_func=WEIGHTS_METHOD_LABELS.__getitem__) or DEFAULT_WEIGHTS_METHOD
    if right.button("🎫 Generate Model Cards", disabled=not promoted, type="primary",
                    help=None if promoted else "Promote at least one model first"):
        st.session_state[f"cards:{scope.name}"] = method
    if st.session_state.get(f"cards:{scope.name}") is None or not promoted:
        st.caption("Generate the cards to review them before export.")
        return
    try:
        chosen, cards, reports, singles = model_cards(scope, board, method)
    except PromotionError as err:
        show_error(err)
        return
    st.markdown("**What the ensemble buys**, measured on the half of the holdout that greedy "
                "selection did not see:")
    st.dataframe(ensemble_table(reports, singles, scope.task), hide_index=True,
                 width="stretch")
    for card, weight in zip(cards, percents_to_100([c.ensemble_weight for c in cards]),
                            strict=True):
        review_card(scope, card, weight)
    export_buttons(scope, chosen, cards, method)


def review_card(scope: Scope, card: ModelCard, weight: str) -> None:
    title = (f"{'👑 ' if card.is_champion else ''}{plain(card.model_name)} · weight "
             f"{weight} · composite {card.composite_score:.4f}")
    with st.expander(title):
        facts = st.columns(4)
        facts[0].metric("Ensemble weight", f"{card.ensemble_weight:.4f}")
        facts[1].metric("Health score", f"{card.health_score:.4f}")
        key = key_metric(card.task)
        value = getattr(card, key)
        facts[2].metric(get_metric(key).label, key_value_text(key, value) if value is not None
                        else "–")
        facts[3].metric("Phase", plain(card.phase))
        card_text_editor(scope.name, card.model_name,
                         {field: getattr(card, field) for field in TEXT_FIELDS})
        st.caption(f"{plain(card.model_path)} · sha256 {card.sha256[:16]}…")


def export_buttons(scope: Scope, chosen: PromotedSet,
                   cards: list[ModelCard], method: str) -> None:
    if st.button("💾 Export Results", key=f"export:{scope.name}"):
        try:
            paths = export_results(chosen, store(), method, cards=cards)
        except PromotionError as err:
            show_error(err)
            return
        st.session_state[f"exported:{scope.name}"] = (str(paths.leaderboard),
                                                      str(paths.model_cards))
    exported = st.session_state.get(f"exported:{scope.name}")
    if not exported:
        return
    st.success("Exported (written atomically):")
    for path in exported:
        st.code(path, language=None)
    left, right = st.columns(2)
    for column, path, label in zip((left, right), exported, ("⬇️ Leaderboard JSON",
                                                             "⬇️ Model cards JSON"),
                                   strict=True):
        file = Path(path)
        if file.exists():
            column.download_button(label, file.read_bytes(), file_name=file.name,
                                   mime="application/json", key=f"download:{file.name}")


def main() -> None:
    scope_problems()
    chosen = scope_and_board()
    if chosen is None:
        return
    scope, board = chosen
    show_notice()
    header(scope, board, f"{len(board.rows)} models")
    weights_editor(scope, board)
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    left.text_input("Reason for your decisions (required, recorded with each)",
                    key="decision_reason", placeholder="e.g. best tree model, fast enough")
    right.checkbox("Override gates", key="override",
                   help="Promote even when a gate fails; recorded as an override with your "
                        "reason.")
    if not (current_user() and reason_given()):
        st.caption(f"Promote and Demote are greyed out until then. {why_disabled()}")
    stages = store().stages(scope.name)
    table(scope, board, filters(board), stages)
    failed(board)
    summary(board, stages)
    cards_section(scope, board, stages)


main()
