"""🔍 Model Explorer: one model in depth, chosen by group → type → model."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

from promotion import PromotionError
from promotion.evaluation import load_row_predictions
from promotion.export import TEXT_FIELDS
from promotion.metrics import get_metric_names
from promotion.scopes import Scope
from promotion.scoring import (
    Leaderboard,
    LeaderboardRow,
    confusion_table,
    metric_score_table,
    per_class_accuracy,
    roc_table,
    threshold_outcome,
)
from views._common import (
    GROUP_COLOURS,
    GROUP_LABELS,
    card_text_editor,
    chart_text,
    derived_texts,
    group_order,
    holdout,
    model_evaluation,
    page_title,
    plain,
    scope_and_board,
    show_error,
    show_notice,
    store,
)


def choose_model(board: Leaderboard) -> LeaderboardRow | None:
    left, middle, right = st.columns(3)
    groups = ["All", *group_order(r.group for r in board.rows)]  # 2A, 2B, 2C, baseline
    group = left.selectbox("Group", groups, key=f"explore_group:{board.scope}",
                           format_func=lambda g: GROUP_LABELS.get(g, g))
    in_group = [r for r in board.rows if group == "All" or r.group == group]
    types = ["All", *sorted({r.model_type for r in in_group})]
    model_type = middle.selectbox("Type", types, key=f"explore_type:{board.scope}")
    candidates = [r for r in in_group if model_type == "All" or r.model_type == model_type]
    if not candidates:
        st.info("No model in this group and type.")
        return None
    names = [r.model_name for r in candidates]
    name = right.selectbox("Model", names, key=f"explore_model:{board.scope}",
                           format_func=lambda n: f"#{board.row(n).rank or '–'}  {n}")
    return board.row(name)


def headline(board: Leaderboard, row: LeaderboardRow) -> None:
    st.subheader(plain(row.model_name))
    if not row.ok:
        st.error(f"This model could not be evaluated: {plain(row.reason)}")
        return
    low, high = row.composite_interval or (0.0, 0.0)
    rank, phase, score, health = st.columns(4)
    rank.metric("Rank", f"#{row.rank} of {len(board.ranked)}")
    phase.metric(f"Phase ({plain(row.group)})", plain(row.phase))
    score.metric("Composite score", f"{row.composite_score:.4f}",
                 help=f"95% interval [{low:.4f}, {high:.4f}]")
    health.metric("Health score", f"{row.health_score:.4f}",
                  help="Lower bound of the composite's 95% interval: the score this model "
                       "should sustain in production.")
    st.caption(f"95% interval of the composite: [{low:.4f}, {high:.4f}]"
               + (" · statistically tied with the leader" if row.tied_with_leader else ""))


def metrics_table(board: Leaderboard, row: LeaderboardRow) -> None:
    names = [n for n in get_metric_names(board.task) if n in row.metrics]
    table = metric_score_table(board, [row.model_name], names)
    table = table.assign(weight=[board.weights.get(n, 0.0) for n in table["metric"]])
    st.dataframe(
        table[["label", "unit", "value", "low", "high", "score", "weight"]], hide_index=True,
        width="stretch",
        column_config={
            "label": "Metric", "unit": "Unit",
            "value": st.column_config.NumberColumn("Value", format="%.4f"),
            "low": st.column_config.NumberColumn("95% low", format="%.4f"),
            "high": st.column_config.NumberColumn("95% high", format="%.4f"),
            "score": st.column_config.ProgressColumn("Score (0–1)", min_value=0, max_value=1,
                                                     format="%.3f"),
            "weight": st.column_config.NumberColumn("Weight", format="%.2f"),
        })


def descriptions(scope: Scope, board: Leaderboard,
                 row: LeaderboardRow) -> None:
    saved = store().annotations(scope.name).get(row.model_name, {})
    derived = derived_texts(scope, board, row.model_name)
    card_text_editor(scope.name, row.model_name,
                     {field: saved.get(field) or derived[field] for field in TEXT_FIELDS},
                     saved=saved, side_by_side=True, height=130)


def judge_chart(scope: Scope, row: LeaderboardRow) -> None:
    rows = load_row_predictions(store(), model_evaluation(scope, row.model_name))
    if rows is None:
        return
    data = holdout(scope)
    colour = GROUP_COLOURS.get(row.group, GROUP_COLOURS["unknown"])
    if scope.task == "binary":
        curve = roc_table(rows, data)
        figure = px.area(curve, x="false_positive_rate", y="true_positive_rate",
                         title=f"ROC curve (AUC {row.metrics['roc_auc']:.4f})",
                         labels={"false_positive_rate": "False positive rate",
                                 "true_positive_rate": "True positive rate"})
        figure.update_traces(line_color=colour)
        figure.add_shape(type="line", x0=0, y0=0, x1=1, y1=1, line={"dash": "dash",
                                                                    "color": "grey"})
        figure.update_layout(height=420, yaxis_range=[0, 1], xaxis_range=[0, 1])
        st.plotly_chart(figure, width="stretch")
        return
    left, right = st.columns([3, 2])
    # Plotly reads HTML tags in axis labels: class labels are escaped for it.
    confusion = confusion_table(rows, data).rename(index=chart_text, columns=chart_text)
    heat = px.imshow(confusion, color_continuous_scale="Blues", zmin=0, zmax=1, aspect="auto",
                     title="Confusion matrix (share of each true class)")
    heat.update_layout(height=460)
    if len(confusion) <= 20:
        heat.update_xaxes(dtick=1)
        heat.update_yaxes(dtick=1)
    left.plotly_chart(heat, width="stretch")
    per_class = per_class_accuracy(rows, data)
    per_class["class"] = per_class["class"].map(chart_text)
    bars = px.bar(per_class, x="class", y="accuracy", hover_data=["rows"],
                  title="Accuracy per class", color_discrete_sequence=[colour])
    bars.add_hline(y=row.metrics["accuracy"], line_dash="dash", annotation_text="overall")
    bars.update_layout(height=460, yaxis_range=[0, 1], xaxis_type="category")
    right.plotly_chart(bars, width="stretch")


def threshold_panel(scope: Scope, row: LeaderboardRow) -> None:
    """What deciding at a chosen threshold gives on the holdout (binary scopes)."""
    rows = load_row_predictions(store(), model_evaluation(scope, row.model_name))
    if rows is None:
        return
    data = holdout(scope)
    served = scope.config.decision_threshold
    st.markdown("**Decision threshold**")
    threshold = st.slider(
        f"Call a row '{data.classes[1]}' from this probability on", min_value=0.01,
        max_value=0.99, value=served, step=0.01, key=f"threshold:{scope.name}:{row.model_name}",
        help=f"The scope serves at {served:g} (scope.json decision_threshold).")
    outcome = threshold_outcome(rows, data, threshold, scope.config.error_costs)
    shown = st.columns(4 if outcome.cost is not None else 3)
    shown[0].metric("Precision", f"{outcome.precision:.1%}",
                    help="Of the rows called positive, the share that are.")
    shown[1].metric("Recall", f"{outcome.recall:.1%}",
                    help="Of the positive rows, the share called positive.")
    shown[2].metric("Rows called positive", f"{outcome.flagged:,} of {len(data.y):,}")
    if outcome.cost is not None:
        shown[3].metric("Cost on the holdout", f"{outcome.cost:,.2f}",
                        help=f"{outcome.false_positives} false positives and "
                             f"{outcome.false_negatives} false negatives at the scope's "
                             "error_costs.")
    else:
        st.caption("Set error_costs in scope.json to see what a threshold costs.")


def main() -> None:
    chosen = scope_and_board()
    if chosen is None:
        return
    scope, board = chosen
    show_notice()
    page_title("🔍 Model Explorer", scope)
    row = choose_model(board)
    if row is None:
        return
    headline(board, row)
    if not row.ok:
        return
    metrics_table(board, row)
    descriptions(scope, board, row)
    try:
        judge_chart(scope, row)
        if scope.task == "binary":
            threshold_panel(scope, row)
    except PromotionError as err:
        show_error(err)
    meta = scope.model(row.model_name).meta
    if meta is not None:
        with st.expander("meta.json (as written; it describes, it does not measure)"):
            st.json(meta.model_dump(mode="json"))
        st.caption(f"sha256 {row.sha256}")


main()
