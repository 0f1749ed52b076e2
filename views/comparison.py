"""📊 Comparison: groups side by side, score against latency, chosen models metric by metric."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from promotion.metrics import get_metric, get_metric_names
from promotion.scoring import Leaderboard, group_summary, metric_score_table, pareto_front
from promotion.vocabulary import key_metric
from views._common import (
    GROUP_LABELS,
    chart_text,
    group_colour_map,
    group_order,
    page_title,
    scope_and_board,
)


def chart_frame(board: Leaderboard) -> pd.DataFrame:
    """The evaluated models, their names escaped for Plotly (it reads HTML tags in hover and
    legend text)."""
    frame = board.to_frame()
    frame = frame[frame["status"] == "ok"].copy()
    frame["model_name"] = frame["model_name"].map(chart_text)
    return frame


def groups_side_by_side(board: Leaderboard) -> None:
    frame = chart_frame(board)
    colours = group_colour_map(group_order(frame["group"]))
    left, right = st.columns(2)
    figure = px.box(frame, x="group", y="composite_score", color="group", points="all",
                    hover_name="model_name", color_discrete_map=colours,
                    category_orders={"group": list(colours)},
                    labels={"composite_score": "Composite score", "group": "Group"},
                    title="Composite score by group")
    figure.update_layout(height=420, showlegend=False)
    left.plotly_chart(figure, width="stretch")
    summary = group_summary(board)
    summary["group"] = [GROUP_LABELS.get(g, g) for g in summary["group"]]
    right.markdown("**Averages by group**")
    right.dataframe(summary, hide_index=True, width="stretch", column_config={
        "group": "Group",
        "models": st.column_config.NumberColumn("Models", width="small"),
        "average": st.column_config.NumberColumn("Average", format="%.4f", width="small"),
        "best": st.column_config.NumberColumn("Best", format="%.4f", width="small"),
        "median": st.column_config.NumberColumn("Median", format="%.4f", width="small"),
    })


def key_metric_by_group(board: Leaderboard) -> None:
    """The task's key metric (top-5 accuracy, AUC, RMSE) by group, best group first in the
    metric's own direction."""
    key = key_metric(board.task)
    metric = get_metric(key)
    way = "higher" if metric.greater_is_better else "lower"
    frame = chart_frame(board)
    colours = group_colour_map(group_order(frame["group"]))
    left, right = st.columns(2)
    figure = px.box(frame, x="group", y=key, color="group", points="all",
                    hover_name="model_name", color_discrete_map=colours,
                    category_orders={"group": list(colours)},
                    labels={key: metric.label, "group": "Group"},
                    title=f"{metric.label} by group ({way} is better)")
    figure.update_layout(height=420, showlegend=False)
    left.plotly_chart(figure, width="stretch")
    summary = group_summary(board, key)
    summary["group"] = [GROUP_LABELS.get(g, g) for g in summary["group"]]
    right.markdown(f"**{metric.label} by group**, best first")
    shown = "%.4f" if metric.greater_is_better else "%.4g"  # an error in the target's units
    right.dataframe(summary, hide_index=True, width="stretch", column_config={
        "group": "Group",
        "models": st.column_config.NumberColumn("Models", width="small"),
        "average": st.column_config.NumberColumn("Average", format=shown, width="small"),
        "best": st.column_config.NumberColumn("Best", format=shown, width="small"),
        "median": st.column_config.NumberColumn("Median", format=shown, width="small"),
    })


def score_against_latency(board: Leaderboard) -> None:
    frame = chart_frame(board)
    frame["pareto"] = pareto_front(frame["composite_score"], frame["latency_p95_ms"])
    colours = group_colour_map(group_order(frame["group"]))
    figure = px.scatter(frame, x="latency_p95_ms", y="composite_score", color="group",
                        hover_name="model_name", log_x=True, color_discrete_map=colours,
                        category_orders={"group": list(colours)},
                        labels={"latency_p95_ms": "Latency p95 per row (ms, log scale)",
                                "composite_score": "Composite score", "group": "Group"},
                        title="Score against latency (Pareto front: no model is both faster "
                              "and better)")
    figure.update_traces(marker={"size": 11})
    # Every tick a plain number: Plotly's default log ticks read "3 4 … 9 100 2".
    figure.update_xaxes(dtick="D1", tickformat="~g")
    front = frame[frame["pareto"]].sort_values("latency_p95_ms")
    figure.add_trace(go.Scatter(
        x=front["latency_p95_ms"], y=front["composite_score"], mode="lines+markers",
        name="Pareto front", text=front["model_name"], hoverinfo="text",
        line={"dash": "dot", "color": "#444"},
        marker={"symbol": "circle-open", "size": 20, "color": "#444", "line": {"width": 2}}))
    figure.update_layout(height=460)
    st.plotly_chart(figure, width="stretch")


def metric_by_metric(board: Leaderboard) -> None:
    names = [r.model_name for r in board.ranked]
    chosen = st.multiselect("Models to compare", names, default=names[:3],
                            key=f"compare:{board.scope}")
    if not chosen:
        st.info("Choose models to compare.")
        return
    metrics = [n for n in get_metric_names(board.task)
               if get_metric(n).kind != "info"]
    table = metric_score_table(board, chosen, metrics)
    figure = px.bar(table.assign(model_name=table["model_name"].map(chart_text)), x="label",
                    y="score", color="model_name", barmode="group",
                    hover_data={"value": ":.4f", "low": ":.4f", "high": ":.4f"},
                    labels={"label": "Metric", "score": "Score (0 = chance/worst, 1 = best)",
                            "model_name": "Model"},
                    title="Metric scores of the chosen models")
    figure.update_layout(height=420, yaxis_range=[0, 1])
    st.plotly_chart(figure, width="stretch")
    wide = table.pivot(index="label", columns="model_name", values="value")
    wide = wide.reindex(table["label"].drop_duplicates()).rename_axis("Metric")
    st.dataframe(wide, width="stretch", column_config={
        name: st.column_config.NumberColumn(name, format="%.4f") for name in wide.columns})


def main() -> None:
    chosen = scope_and_board()
    if chosen is None:
        return
    scope, board = chosen
    page_title("📊 Comparison", scope)
    if not board.ranked:
        st.info("No model of this scope could be evaluated, so there is nothing to compare.")
        return
    groups_side_by_side(board)
    key_metric_by_group(board)
    score_against_latency(board)
    st.subheader("Model against model")
    metric_by_metric(board)


main()
