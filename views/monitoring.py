"""📡 Monitoring: live metrics against the health score, champion vs challengers on the same
requests, the recommendation (one click to apply, with a reason) and drift. A regression scope
shows live RMSE and MAE (lower is better) against the holdout's."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import plotly.express as px
import streamlit as st

from promotion import PromotionError
from promotion.contract import ModelCard
from promotion.engine import newest_cards_file, read_cards
from promotion.metrics import get_metric
from promotion.monitoring import (
    MIN_OUTCOMES,
    PSI_FLAG,
    LiveData,
    Recommendation,
    apply_recommendation,
    deployment_summary,
    recommend,
    regression_comparison,
    served_errors,
    simulate,
    window_metrics,
)
from promotion.scopes import Scope
from promotion.vocabulary import is_regression, key_metric
from views._common import (
    chart_text,
    current_scope,
    current_user,
    live_data,
    live_drift,
    may_do,
    page_title,
    plain,
    show_error,
    show_notice,
    store,
    store_write,
)

ACTION_LABELS = {"wait": "⏳ Wait", "rollback": "↩️ Roll back", "increase": "⏫ Increase "
                 "allocation", "keep": "✅ Keep", "none": "—"}


def apply_now(scope: Scope, advice: Recommendation) -> None:
    """Button callback: apply the recommendation through the lifecycle, with the reason; one
    made for an allocation no longer in force is refused (see ``apply_recommendation``)."""
    state = st.session_state
    try:
        with store_write():
            done = apply_recommendation(scope.models_dir, scope.name, store(), advice,
                                        actor=current_user(),
                                        reason=str(state.get("monitoring_reason") or ""))
    except PromotionError as err:
        state["said:apply"] = ("error", plain(err))
        return
    state["monitoring_reason"] = ""
    state["said:apply"] = ("ok", f"Applied: {plain(done)}. Recorded in the history and "
                                 f"exported; now {plain(deployment_summary(store(), scope))}.")


def said(where: str) -> None:
    """The message a callback left for this place, beside its button."""
    message = st.session_state.pop(f"said:{where}", None)
    if message:
        (st.success if message[0] == "ok" else st.error)(message[1])


def recommendation_panel(scope: Scope, advice: Recommendation) -> None:
    st.subheader(f"Recommendation: {ACTION_LABELS[advice.action]}")
    st.text(f"Rule: {advice.rule}")
    if advice.figures is not None:
        f = advice.figures
        # Regression compares RMSE, an error: the labels say which way is better.
        live_label, baseline_label = (("live RMSE (lower is better)", "baseline RMSE")
                                      if f.lower_is_better else ("live", "baseline live"))
        st.dataframe(pd.DataFrame([{
            "subject": advice.subject, "baseline": advice.baseline,
            "outcomes": f.outcomes, "needed": MIN_OUTCOMES,
            "days at allocation": round(f.days, 2), "min days": f.min_days,
            live_label: f.live, baseline_label: f.baseline_live, "error rate": f.error_rate,
            "latency ms/row": f.latency_ms, "baseline latency ms/row": f.baseline_latency_ms,
        }]), hide_index=True, width="stretch", column_config={
            live_label: st.column_config.NumberColumn(format="%.4f"),
            baseline_label: st.column_config.NumberColumn(format="%.4f"),
            "error rate": st.column_config.NumberColumn(format="percent"),
            "latency ms/row": st.column_config.NumberColumn(format="%.3f"),
            "baseline latency ms/row": st.column_config.NumberColumn(format="%.3f")})
    if advice.plan:
        st.text(f"Applying will: {advice.plan}")
        st.text_input("Reason (required, recorded)", key="monitoring_reason")
        ready = bool(str(st.session_state.get("monitoring_reason") or "").strip()) \
            and may_do("move")
        st.button(f"{ACTION_LABELS[advice.action]}: apply", key=f"apply:{scope.name}",
                  type="primary", disabled=not ready, on_click=apply_now, args=(scope, advice))
        if not ready:
            st.caption("Enter your name in the sidebar and a reason above to apply.")
    said("apply")


def simulate_now(scope: Scope) -> None:
    """Button callback: replay holdout rows through the served export (``simulate``)."""
    state = st.session_state
    feature = state.get(f"sim_drift:{scope.name}")
    drift = (str(feature), float(state.get(f"sim_shift:{scope.name}") or 0.0)) \
        if feature else None
    try:
        report = simulate(scope.models_dir, scope.name,
                          int(state.get(f"sim_requests:{scope.name}") or 1000), drift=drift,
                          seed=int(datetime.now(UTC).timestamp()),
                          days=float(state.get(f"sim_days:{scope.name}") or 8.0))
    except PromotionError as err:
        state["said:simulate"] = ("error", plain(err))
        return
    state["said:simulate"] = ("ok", plain(f"{report.summary()}. {report.outcomes.summary()}"))


def traffic_panel(scope: Scope, features: list[str], *, expanded: bool) -> None:
    """Simulated traffic: holdout rows replayed through the served export, with outcomes."""
    with st.expander("🧪 Simulate traffic (replay holdout rows through the served export)",
                     expanded=expanded):
        st.caption("Each row is answered by the engine as deployed now, logged with every "
                   "model's prediction, and its true label joined as the outcome. Same as "
                   "`.venv/bin/python -m promotion simulate` from the project folder.")
        cols = st.columns(4)
        cols[0].number_input("Requests", 100, 20000, 1500, step=100,
                             key=f"sim_requests:{scope.name}")
        cols[1].number_input("Spread over days", 0.5, 60.0, 8.0, step=0.5,
                             key=f"sim_days:{scope.name}")
        cols[2].selectbox("Drift a feature", [None, *features],
                          format_func=lambda f: "no drift" if f is None else f,
                          key=f"sim_drift:{scope.name}")
        cols[3].number_input("Shift (standard deviations)", -5.0, 5.0, 1.5, step=0.5,
                             key=f"sim_shift:{scope.name}")
        st.button("▶️ Replay as traffic", key=f"simulate:{scope.name}", on_click=simulate_now,
                  args=(scope,))
        said("simulate")


def metrics_panel(scope: Scope, live: LiveData,
                  cards: list[ModelCard]) -> None:
    key = key_metric(scope.task)
    st.subheader(f"Live {get_metric(key).label} per day, on the same requests")
    table = window_metrics(live, scope.task, cards)
    if table.empty:
        st.info("No outcomes joined yet. Hint: replay holdout rows as traffic above (their "
                "true labels are joined), or join your own from the project folder: "
                f".venv/bin/python -m promotion outcomes --scope {plain(scope.name)} "
                "--file labels.csv")
        return
    # Plotly reads HTML tags in legend names: the chart gets the names escaped for it.
    figure = px.line(table.assign(model=table["model"].map(chart_text)), x="window",
                     y="value", color="model", markers=True,
                     error_y=table["high"] - table["value"],
                     error_y_minus=table["value"] - table["low"],
                     labels={"value": key, "window": "day (UTC)"})
    for card in cards:
        low = card.metrics[key].low if key in card.metrics else None
        if low is not None:
            figure.add_hline(y=low, line_dash="dot", annotation_text=chart_text(
                f"{card.model_name} holdout lower bound"))
    st.plotly_chart(figure, width="stretch", key=f"live_chart:{scope.name}")
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "window": st.column_config.DatetimeColumn("Day (UTC)", format="YYYY-MM-DD"),
        "value": st.column_config.NumberColumn(key, format="%.4f"),
        "low": st.column_config.NumberColumn("95% low", format="%.4f"),
        "high": st.column_config.NumberColumn("95% high", format="%.4f"),
        "health_score": st.column_config.NumberColumn("Health score", format="%.4f"),
        "holdout_low": st.column_config.NumberColumn("Holdout lower bound", format="%.4f")})


def regression_panel(scope: Scope, live: LiveData, cards: list[ModelCard]) -> None:
    """Live RMSE and MAE per day against each model's holdout interval, then every model side
    by side on the same requests (the shadow comparison)."""
    st.subheader("Live RMSE and MAE per day, on the same requests (lower is better)")
    table = window_metrics(live, scope.task, cards)
    if table.empty:
        st.info("No outcomes joined yet. Hint: replay holdout rows as traffic above (their "
                "true values are joined), or join your own from the project folder: "
                f".venv/bin/python -m promotion outcomes --scope {plain(scope.name)} "
                "--file outcomes.csv (columns request_id,label; each label a number)")
        return
    by_name = {c.model_name: c for c in cards}
    for metric, column in zip(("rmse", "mae"), st.columns(2), strict=True):
        label = get_metric(metric).label
        rows = table[table["metric"] == metric]
        # Plotly reads HTML tags in legend names: the chart gets the names escaped for it.
        figure = px.line(rows.assign(model=rows["model"].map(chart_text)), x="window",
                         y="value", color="model", markers=True,
                         error_y=rows["high"] - rows["value"],
                         error_y_minus=rows["value"] - rows["low"],
                         labels={"value": f"live {label} (lower is better)",
                                 "window": "day (UTC)"})
        for name in rows["model"].unique():
            held = by_name[name].metrics.get(metric)
            if held is not None and held.high is not None:
                figure.add_hline(y=held.high, line_dash="dot", annotation_text=chart_text(
                    f"{name} holdout upper bound"))
        column.plotly_chart(figure, width="stretch", key=f"live_{metric}:{scope.name}")
    number = st.column_config.NumberColumn
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "window": st.column_config.DatetimeColumn("Day (UTC)", format="YYYY-MM-DD"),
        "metric": st.column_config.TextColumn("Metric (lower is better)"),
        "value": number("Live", format="%.4g"), "low": number("95% low", format="%.4g"),
        "high": number("95% high", format="%.4g"),
        "holdout": number("Holdout", format="%.4g"),
        "holdout_low": number("Holdout 95% low", format="%.4g"),
        "holdout_high": number("Holdout 95% high", format="%.4g")})
    st.caption("Intervals: 95% normal approximation of the mean per-request loss (RMSE from "
               "the mean squared error's); holdout intervals: the paired bootstrap of the "
               "cards.")
    st.subheader("Shadow comparison: every model on the same requests")
    answered, errors = served_errors(live)
    if answered:
        rmse, mae = errors["rmse"], errors["mae"]
        st.text(f"Served answers ({answered:,} with outcomes): RMSE {rmse[0]:.4g} (95% "
                f"{rmse[1]:.4g} to {rmse[2]:.4g}), MAE {mae[0]:.4g} (95% {mae[1]:.4g} to "
                f"{mae[2]:.4g}); lower is better")
    comparison = regression_comparison(live, cards).drop(columns="window")
    st.dataframe(comparison, hide_index=True, width="stretch", column_config={
        "metric": st.column_config.TextColumn("Metric (lower is better)"),
        "value": number("Live", format="%.4g"), "low": number("95% low", format="%.4g"),
        "high": number("95% high", format="%.4g"),
        "holdout": number("Holdout", format="%.4g"),
        "holdout_low": number("Holdout 95% low", format="%.4g"),
        "holdout_high": number("Holdout 95% high", format="%.4g"),
        "reference": st.column_config.TextColumn("Compared with"),
        "vs_reference": number("Relative (+: worse)", format="percent")})


def drift_panel(scope: Scope, live: LiveData) -> None:
    st.subheader("🌊 Drift: population stability index per feature")
    try:
        table = live_drift(scope, live)
    except PromotionError as err:
        show_error(err)
        return
    flagged = table[table["flagged"]]
    if len(flagged):
        st.warning(f"{len(flagged)} feature(s) drifted (PSI > {PSI_FLAG}): "
                   + ", ".join(plain(f) for f in flagged["feature"].head(10)))
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "psi": st.column_config.NumberColumn("PSI", format="%.4f"),
        "verdict": st.column_config.TextColumn("Verdict")})


def main() -> None:
    scope = current_scope()
    if scope is None:
        return
    page_title("📡 Monitoring", scope)
    show_notice()
    try:
        source = newest_cards_file(scope.name, scope.models_dir)
        cards = read_cards(source)
    except PromotionError as err:
        st.info(f"Nothing exported to serve yet: {plain(err)}")
        return
    st.caption(f"Export {plain(source.name)} ({cards[0].deployment_mode} mode) · decided: "
               f"{plain(deployment_summary(store(), scope))}")
    try:
        live = live_data(scope)
    except PromotionError as err:  # a locked, damaged or unreadable log
        show_error(err)
        return
    traffic_panel(scope, list(cards[0].feature_names),
                  expanded=live.empty or "said:simulate" in st.session_state)
    if live.empty:
        st.info("No prediction logged yet: replay holdout rows as traffic above, or serve "
                "real requests with the engine.")
        return
    st.text(f"{len(live.requests):,} requests logged, {live.labelled.sum():,} with outcomes")
    recommendation_panel(scope, recommend(live, cards, scope.task))
    if is_regression(scope.task):
        regression_panel(scope, live, cards)
    else:
        metrics_panel(scope, live, cards)
    drift_panel(scope, live)


main()
