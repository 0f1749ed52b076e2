"""🔍 Model Explorer: one model in depth, chosen by group → type → model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from promotion import PromotionError
from promotion.evaluation import RowPredictions, load_row_predictions
from promotion.export import INSUFFICIENT, TEXT_FIELDS, SliceFinding
from promotion.metrics import get_metric_names
from promotion.scopes import Holdout, Scope
from promotion.scoring import (
    Leaderboard,
    LeaderboardRow,
    confusion_table,
    metric_score_table,
    per_class_accuracy,
    predicted_against_actual,
    residuals_by_feature,
    roc_table,
    threshold_outcome,
)
from promotion.vocabulary import is_regression, task_rules
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
    slice_findings,
    store,
)

#: Evidence that another part of the domain could not compute for this model: shown as a
#: note, so the rest of the page (scores, charts) still serves the analyst.
UNAVAILABLE = (PromotionError, TypeError, ValueError)
#: The most holdout rows drawn in the predicted-against-actual chart (a seeded sample beyond).
MAX_POINTS = 20_000
OVER, UNDER = "#C62828", "#1565C0"
#: How each task's slice loss is named (``vocabulary.TaskRules.slice_loss``), and the
#: measures of a regression model's slices.
SLICE_LOSS_LABELS = {"error": "Error rate", "log_loss": "Log loss", "residual": "Residual"}
MEASURE_LABELS = {"residual": "Mean residual", "absolute_error": "Mean absolute error"}


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
    try:
        derived = derived_texts(scope, board, row.model_name)
    except UNAVAILABLE as err:
        st.info(f"The holdout evidence behind these texts is not available for this model: "
                f"{plain(err)}")
        derived = dict.fromkeys(TEXT_FIELDS, INSUFFICIENT)
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


def regression_panel(scope: Scope, row: LeaderboardRow) -> None:
    """Predicted against actual, the residuals' spread, and where they are biased."""
    rows = load_row_predictions(store(), model_evaluation(scope, row.model_name))
    if rows is None:
        return
    data = holdout(scope)
    colour = GROUP_COLOURS.get(row.group, GROUP_COLOURS["unknown"])
    points = predicted_against_actual(rows, data)
    target = chart_text(scope.config.target)
    left, right = st.columns([3, 2])
    left.plotly_chart(predicted_chart(points, row, colour, target), width="stretch")
    kept = points[~points["failed"]]
    spread = px.histogram(kept, x="residual", nbins=40, color_discrete_sequence=[colour],
                          title="Residuals (predicted − actual)",
                          labels={"residual": f"Residual ({target})"})
    spread.add_vline(x=0, line_dash="dash", line_color="grey")
    spread.update_layout(height=460, yaxis_title="Rows", bargap=0.05)
    right.plotly_chart(spread, width="stretch")
    failed = int(points["failed"].sum())
    st.caption(f"{len(points):,} holdout rows" + (
        f"; {failed:,} the model failed on are drawn grey at the model's mean (as scored) "
        "and left out of the residuals" if failed else "")
        + (f"; the chart draws a sample of {MAX_POINTS:,}" if len(points) > MAX_POINTS
           else ""))
    residual_panel(scope, row, rows, data)


def predicted_chart(points: pd.DataFrame, row: LeaderboardRow, colour: str,
                    target: str) -> go.Figure:
    shown = points if len(points) <= MAX_POINTS else points.sample(MAX_POINTS,
                                                                   random_state=0)
    shown = shown.assign(kind=np.where(shown["failed"], "failed: its mean", "predicted"))
    figure = px.scatter(shown, x="actual", y="predicted", color="kind", opacity=0.65,
                        color_discrete_map={"predicted": colour, "failed: its mean": "#9E9E9E"},
                        hover_data={"residual": ":.4g", "kind": False},
                        labels={"actual": f"Actual {target}", "predicted": f"Predicted {target}",
                                "kind": ""},
                        title=f"Predicted against actual (RMSE {row.metrics['rmse']:.4g}, "
                              f"R² {row.metrics['r2']:.3f})")
    low = float(min(points["actual"].min(), points["predicted"].min()))
    high = float(max(points["actual"].max(), points["predicted"].max()))
    figure.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines",
                                name="predicted = actual", hoverinfo="skip",
                                line={"dash": "dash", "color": "grey"}))
    pad = 0.03 * (high - low or 1.0)
    figure.update_xaxes(range=[low - pad, high + pad])
    figure.update_yaxes(range=[low - pad, high + pad])
    figure.update_layout(height=460, legend={"orientation": "h", "y": -0.18, "title": None})
    return figure


def residual_panel(scope: Scope, row: LeaderboardRow, rows: RowPredictions,
                   data: Holdout) -> None:
    """The mean residual of each bin of one feature with its interval, and the table."""
    st.markdown("**Residuals by feature**: the mean of predicted − actual in each bin of a "
                "feature, with its 95% interval. Above 0 the model over-predicts there, below "
                "0 it under-predicts; an interval that leaves 0 out is a bias the slice "
                "table below tests (Holm-corrected).")
    table = residuals_by_feature(rows, data)
    if table.empty:
        st.caption("The holdout has no feature to bin.")
        return
    left, right = st.columns(2)
    feature = right.selectbox("Feature", table["feature"].unique().tolist(),
                              key=f"residual_feature:{scope.name}:{row.model_name}")
    chosen = table[table["feature"] == feature]
    # An interval's two ends on two lines, so a bin's label stays level and whole.
    ticks = [chart_text(b).replace(", ", ",<br>") if b.startswith("[") else chart_text(b)
             for b in chosen["bin"]]
    bars = px.bar(
        chosen.assign(bin=ticks,
                      side=np.where(chosen["mean_residual"] > 0, "over-predicts",
                                    "under-predicts")),
        x="bin", y="mean_residual", color="side",
        error_y=chosen["high"] - chosen["mean_residual"],
        error_y_minus=chosen["mean_residual"] - chosen["low"],
        color_discrete_map={"over-predicts": OVER, "under-predicts": UNDER},
        hover_data={"rows": True, "side": False},
        labels={"bin": chart_text(feature), "mean_residual": "Mean residual", "side": ""},
        title=f"Mean residual by {chart_text(feature)} bin")
    bars.add_hline(y=0, line_color="grey")
    bars.update_xaxes(type="category", categoryorder="array", categoryarray=ticks)
    bars.update_layout(height=400, legend={"orientation": "h", "y": 1.0, "x": 1.0,
                                           "xanchor": "right", "yanchor": "bottom",
                                           "title": None})
    left.plotly_chart(bars, width="stretch")
    right.dataframe(chosen.assign(interval=[f"[{lo:.3g}, {hi:.3g}]" for lo, hi in
                                            zip(chosen["low"], chosen["high"], strict=True)])[
        ["bin", "rows", "mean_residual", "interval"]], hide_index=True, width="stretch",
        column_config=residual_columns())
    with st.expander("Every feature's bins"):
        st.dataframe(table[["feature", "bin", "rows", "mean_residual", "low", "high"]],
                     hide_index=True, width="stretch", column_config=residual_columns())


def residual_columns() -> dict:
    return {"feature": "Feature", "bin": "Bin", "rows": "Rows",
            "mean_residual": st.column_config.NumberColumn("Mean residual", format="%.4g"),
            "interval": "95% interval",
            "low": st.column_config.NumberColumn("95% low", format="%.4g"),
            "high": st.column_config.NumberColumn("95% high", format="%.4g")}


def slice_table(scope: Scope, row: LeaderboardRow) -> None:
    """The slices of the holdout where the model differs significantly from its own
    average: the evidence behind its strength and known bias."""
    st.markdown("**Slices**: where this model is significantly better or worse than its own "
                "average on the holdout (Holm-corrected over every slice tested)")
    try:
        findings = slice_findings(scope, row.model_name)
    except UNAVAILABLE as err:
        st.info(f"The slice analysis is not available for this model: {plain(err)}")
        return
    if not findings:
        st.caption("No slice passes the bars: the model is about as good everywhere the "
                   "holdout can tell.")
        return
    names = {**MEASURE_LABELS, "loss": SLICE_LOSS_LABELS.get(
        task_rules(scope.task).slice_loss, "Loss")}
    st.dataframe(pd.DataFrame([{
        "slice": f.description, "measure": names.get(measure(f), measure(f)), "rows": f.rows,
        "value": f.slice_loss, "interval": f"[{f.low:.4g}, {f.high:.4g}]",
        "overall": f.overall_loss, "p": f.p_value} for f in findings]),
        hide_index=True, width="stretch", column_config={
            "slice": "Slice", "measure": "Measure", "rows": "Rows",
            "value": st.column_config.NumberColumn("In the slice", format="%.4g"),
            "interval": "95% interval",
            "overall": st.column_config.NumberColumn("Overall", format="%.4g"),
            "p": st.column_config.NumberColumn("p (Holm)", format="%.2g")})


def measure(finding: SliceFinding) -> str:
    """What a finding measures: the task's loss, or for regression its mean residual (a bias)
    or mean absolute error (a strength or weakness)."""
    return str(getattr(finding, "measure", "loss"))


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
        if is_regression(scope.task):
            regression_panel(scope, row)
        else:
            judge_chart(scope, row)
        if scope.task == "binary":
            threshold_panel(scope, row)
    except PromotionError as err:
        show_error(err)
    slice_table(scope, row)
    meta = scope.model(row.model_name).meta
    if meta is not None:
        with st.expander("meta.json (as written; it describes, it does not measure)"):
            st.json(meta.model_dump(mode="json"))
        st.caption(f"sha256 {row.sha256}")


main()
