"""Live monitoring: outcomes joined to the prediction log, live metrics, the recommendation
following the decision rules, drift, and a replay of holdout rows as traffic.

Decision rules (the seeds' champion/challenger workflow), in this order:

1. **wait** while the subject has fewer than 1,000 outcomes, or fewer than the minimum days at
   this allocation (shadow 3, canary ≤10% 3, 25% 5, 50% 7, 100% 7);
2. **roll back** when its live accuracy (top-5 accuracy, or AUC for binary) is more than 5%
   below the baseline's on the same requests, its error rate exceeds 1%, or its latency is
   more than double the baseline's;
3. otherwise **increase** the allocation (shadow → canary 10% → 25% → 50% → 100% → champion).

Exactly 1,000 outcomes, exactly 5% below, exactly 1% and exactly 2× do not trigger.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, top_k_accuracy_score

from ._cards import ModelCard, cards_files, feature_stats_path
from ._discovery import Scope
from ._drift import drift_table, read_feature_stats
from ._errors import InvalidInputError
from ._evaluation import TOP_K
from ._lifecycle import (
    CANARY_STEPS,
    deployment_of,
    next_canary_share,
    previous_champion,
    rollback,
    set_deployment,
)
from ._predlog import connect, guarded, log_path, read_batches, read_outcomes, transaction
from ._store import Store

MIN_OUTCOMES = 1000
MAX_DROP = 0.05
MAX_ERROR_RATE = 0.01
MAX_LATENCY_RATIO = 2.0
#: Minimum days at an allocation before it may rise (shadow is share 0).
MIN_DAYS: dict[float, float] = {0.0: 3, 0.10: 3, 0.25: 5, 0.50: 7, 1.0: 7}
_EPS = 1e-12
Action = Literal["wait", "rollback", "increase", "keep", "none"]


# --- outcomes ----------------------------------------------------------------------------

@dataclass(frozen=True)
class OutcomeReport:
    """What joining a labels file did: written, and every id not written with the reason."""

    written: int
    unmatched: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # same label again: ignored
    conflicts: list[str] = field(default_factory=list)  # another label: the first is kept
    unknown_labels: list[str] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)  # logged more than once

    def summary(self) -> str:
        parts = [f"{self.written} outcome(s) joined"]
        for name, ids in (("unmatched (no such request logged)", self.unmatched),
                          ("duplicate (same label again, ignored)", self.duplicates),
                          ("conflicting (another label; the first is kept)", self.conflicts),
                          ("with an unknown label", self.unknown_labels),
                          ("ambiguous (logged more than once; not joined)", self.ambiguous)):
            if ids:
                shown = ", ".join(ids[:5]) + (f" … (+{len(ids) - 5})" if len(ids) > 5 else "")
                parts.append(f"{len(ids)} {name}: {shown}")
        return "; ".join(parts)


def read_labels(path: Path) -> pd.DataFrame:
    """A labels CSV with columns ``request_id`` and ``label`` (read as text)."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: file is missing (argument --file)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InvalidInputError(f"{path}: not a readable CSV ({err})") from None
    for column in ("request_id", "label"):
        if column not in frame.columns:
            raise InvalidInputError(f"{path}: column '{column}' is missing (the file needs "
                                    "request_id,label)")
    return frame[["request_id", "label"]]


def record_outcomes(models_dir: Path, scope: str, labels: pd.DataFrame, *,
                    source: str = "labels") -> OutcomeReport:
    """Join true labels to the logged requests of ``scope``.

    A label may arrive any time after its request (late labels are fine). An id that was
    never logged is reported as unmatched and not kept; one logged more than once is reported
    as ambiguous and not kept. The first label of a request wins: a repeat with the same label
    is reported as a duplicate, one with another label as a conflict; neither changes what is
    stored.
    """
    path = log_path(models_dir, scope)
    batches = read_batches(path)
    if not batches:
        raise InvalidInputError(f"{path}: no prediction logged for scope '{scope}' yet. "
                                "Hint: serve predictions first (python -m promotion predict or "
                                "simulate)")
    classes = {c for batch in batches for c in batch.classes}
    logged = Counter(i for batch in batches for i in batch.request_ids)
    report = OutcomeReport(written=0)
    with guarded(path), closing(connect(path)) as conn, transaction(conn):
        stored = dict(conn.execute("SELECT request_id, label FROM outcome"))
        rows = []
        for request_id, label in zip(labels["request_id"].astype(str).str.strip(),
                                     labels["label"].astype(str).str.strip(), strict=True):
            if request_id not in logged:
                report.unmatched.append(request_id)
            elif logged[request_id] > 1:
                report.ambiguous.append(request_id)
            elif label not in classes:
                report.unknown_labels.append(request_id)
            elif request_id in stored:
                (report.duplicates if stored[request_id] == label
                 else report.conflicts).append(request_id)
            else:
                stored[request_id] = label
                rows.append((request_id, label, time.time(), source))
        conn.executemany("INSERT INTO outcome (request_id, label, recorded_at, source) "
                         "VALUES (?,?,?,?)", rows)
    return replace(report, written=len(rows))


# --- the log as arrays -------------------------------------------------------------------

@dataclass(frozen=True)
class LiveData:
    """The logged requests of a scope, with every model's probabilities and the labels."""

    requests: pd.DataFrame  # request_id, at (UTC), served, batch_id, export, mode, canary, ...
    probas: dict[str, np.ndarray]  # model -> (rows, classes), NaN where not scored
    failed: dict[str, np.ndarray]  # model -> (rows,) bool
    latency: dict[str, np.ndarray]  # model -> (rows,) ms per row of its batch, NaN if absent
    y: np.ndarray  # class index per row, -1 when no outcome yet
    classes: list[str]
    features: list[str]
    inputs: np.ndarray  # (rows, features) float32

    @property
    def empty(self) -> bool:
        return self.requests.empty


def load_live(models_dir: Path, scope: str) -> LiveData:
    """Everything logged for ``scope``, in time order (empty when nothing was served yet)."""
    path = log_path(models_dir, scope)
    batches = [b for b in read_batches(path) if len(b.request_ids)]
    if not batches:
        return LiveData(pd.DataFrame(columns=["request_id", "at", "served", "batch_id",
                                              "export", "mode", "canary", "canary_share"]),
                        {}, {}, {}, np.zeros(0, int), [], [], np.zeros((0, 0), np.float32))
    classes, features = batches[-1].classes, batches[-1].features
    sizes = [len(b.request_ids) for b in batches]
    n, offsets = sum(sizes), np.cumsum([0, *sizes])
    probas: dict[str, np.ndarray] = {}
    failed: dict[str, np.ndarray] = {}
    latency: dict[str, np.ndarray] = {}
    inputs = np.full((n, len(features)), np.nan, dtype=np.float32)
    for batch, start, stop in zip(batches, offsets[:-1], offsets[1:], strict=True):
        for k, model in enumerate(batch.models):
            if model not in probas:
                probas[model] = np.full((n, len(classes)), np.nan)
                failed[model] = np.zeros(n, dtype=bool)
                latency[model] = np.full(n, np.nan)
            if batch.classes == classes:  # an export with other classes is left out
                probas[model][start:stop] = batch.probas[:, k]
            failed[model][start:stop] = batch.failed[:, k]
            latency[model][start:stop] = batch.latency_ms.get(model, np.nan)
        if batch.features == features:
            inputs[start:stop] = batch.inputs
    frame = pd.DataFrame({
        "request_id": [i for b in batches for i in b.request_ids],
        "at": pd.to_datetime(np.concatenate([b.at for b in batches]), unit="s", utc=True),
        "served": [s for b in batches for s in b.served],
        "batch_id": np.repeat([b.id for b in batches], sizes),
        **{fact: np.repeat(np.array([getattr(b, fact) for b in batches], dtype=object), sizes)
           for fact in ("export", "mode", "canary", "canary_share")}})
    index = {c: i for i, c in enumerate(classes)}
    labels = read_outcomes(path)
    y = np.array([index.get(labels.get(i, ""), -1) for i in frame["request_id"]])
    order = np.argsort(frame["at"].to_numpy(), kind="stable")  # replays may be out of order
    frame = frame.iloc[order].reset_index(drop=True)
    return LiveData(frame, {m: p[order] for m, p in probas.items()},
                    {m: f[order] for m, f in failed.items()},
                    {m: t[order] for m, t in latency.items()}, y[order], classes, features,
                    inputs[order])


# --- live metrics ------------------------------------------------------------------------

def metric_name(task: str) -> str:
    return "top_5_accuracy" if task == "multiclass" else "roc_auc"


def live_metric(proba: np.ndarray, y: np.ndarray, task: str) -> tuple[float, float, float]:
    """Top-5 accuracy (Wilson 95% interval) or AUC (Hanley–McNeil 95% interval)."""
    n = len(y)
    if n == 0:
        return math.nan, math.nan, math.nan
    labels = np.arange(proba.shape[1])
    if task == "multiclass":
        k = min(TOP_K, len(labels) - 1)
        value = float(top_k_accuracy_score(y, proba, k=k, labels=labels))
        return (value, *wilson(round(value * n), n))
    positives = int((y == 1).sum())
    if positives in (0, n):
        return math.nan, math.nan, math.nan
    value = float(roc_auc_score(y, proba[:, 1]))
    return (value, *_hanley_mcneil(value, positives, n - positives))


def wilson(hits: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion."""
    if n == 0:
        return math.nan, math.nan
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # Rounding could leave p = 0 or 1 a hair outside its own interval.
    return min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half))


def _hanley_mcneil(auc: float, positives: int, negatives: int, z: float = 1.959964
                   ) -> tuple[float, float]:
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc)
           + (negatives - 1) * (q2 - auc * auc)) / (positives * negatives)
    half = z * math.sqrt(max(var, 0.0))
    return max(0.0, auc - half), min(1.0, auc + half)


def _paired(live: LiveData, models: list[str], rows: np.ndarray) -> np.ndarray:
    """The labeled rows among ``rows`` where every one of ``models`` has a prediction."""
    keep = rows & (live.y >= 0)
    for model in models:
        keep &= np.isfinite(live.probas[model]).all(axis=1)
    return keep


def window_metrics(live: LiveData, task: str, cards: list[ModelCard], freq: str = "D"
                   ) -> pd.DataFrame:
    """Per model and time window: outcomes, live metric with its 95% interval, health score,
    on the requests every model scored (the same requests side by side)."""
    models = [c.model_name for c in cards if c.model_name in live.probas]
    if live.empty or not models:
        return pd.DataFrame(columns=["model", "window", "outcomes", "value", "low", "high",
                                     "health_score", "holdout_low"])
    keep = _paired(live, models, np.ones(len(live.y), dtype=bool))
    windows = live.requests["at"].dt.floor(freq)
    key = metric_name(task)
    by_name = {c.model_name: c for c in cards}
    records = []
    for window in sorted(windows[keep].unique()):
        rows = keep & (windows == window).to_numpy()
        for model in models:
            value, low, high = live_metric(live.probas[model][rows], live.y[rows], task)
            card = by_name[model]
            records.append({"model": model, "window": window, "outcomes": int(rows.sum()),
                            "value": value, "low": low, "high": high,
                            "health_score": card.health_score,
                            "holdout_low": card.metrics[key].low if key in card.metrics
                            else None})
    return pd.DataFrame.from_records(records)


# --- the recommendation ------------------------------------------------------------------

@dataclass(frozen=True)
class RuleFigures:
    """What the rules read: the subject's evidence at this allocation and its baseline's."""

    outcomes: int
    days: float
    min_days: float
    live: float
    baseline_live: float
    error_rate: float
    latency_ms: float
    baseline_latency_ms: float


def decide(figures: RuleFigures) -> tuple[Action, str]:
    """Wait, roll back or increase, with the rule that decided (see the module docstring)."""
    f = figures
    if f.outcomes < MIN_OUTCOMES:
        return "wait", f"{f.outcomes:,} outcomes < {MIN_OUTCOMES:,} needed"
    if f.days < f.min_days - _EPS:
        return "wait", f"{f.days:.1f} days at this allocation < {f.min_days:g} needed"
    if math.isfinite(f.live) and math.isfinite(f.baseline_live) and f.baseline_live > 0:
        drop = 1 - f.live / f.baseline_live
        if drop > MAX_DROP + _EPS:
            return "rollback", (f"live {f.live:.4f} is {drop:.1%} below the baseline's "
                                f"{f.baseline_live:.4f} (> {MAX_DROP:.0%})")
    if f.error_rate > MAX_ERROR_RATE + _EPS:
        return "rollback", f"error rate {f.error_rate:.2%} > {MAX_ERROR_RATE:.0%}"
    if (f.baseline_latency_ms > 0
            and f.latency_ms > MAX_LATENCY_RATIO * f.baseline_latency_ms * (1 + _EPS)):
        return "rollback", (f"latency {f.latency_ms:.3f} ms/row is more than "
                            f"{MAX_LATENCY_RATIO:g}× the baseline's "
                            f"{f.baseline_latency_ms:.3f}")
    return "increase", "enough evidence, no rollback rule fires"


@dataclass(frozen=True)
class Recommendation:
    """The recommendation for a scope now, its rule, figures and what applying it does."""

    action: Action
    rule: str
    subject: str | None = None
    baseline: str | None = None
    mode: str = "ensemble"
    share: float = 0.0
    figures: RuleFigures | None = None
    plan: str | None = None  # what applying does, in words; None when nothing to apply
    step: tuple = ()  # machine form of the plan


def min_days(share: float) -> float:
    """Minimum days at an allocation before it may rise (shadow: share 0)."""
    step = next((s for s in sorted(MIN_DAYS) if share <= s + _EPS), 1.0)
    return MIN_DAYS[step]


def recommend(live: LiveData, cards: list[ModelCard], task: str) -> Recommendation:
    """The recommendation from the log's current allocation and its outcomes."""
    if live.empty:
        return Recommendation("none", "no prediction logged yet")
    # The newest batch by id, as the allocation period goes: a replay logged last may carry
    # earlier request times than the batch before it.
    requests = live.requests
    last = requests.loc[requests["batch_id"] == requests["batch_id"].max()].iloc[0]
    mode = str(last["mode"])
    if mode == "ensemble":
        return Recommendation("none", "ensemble mode serves the weighted set; choose champion "
                                      "mode on the Lifecycle page to test challengers")
    period = _allocation_period(live)
    roles = {c.model_name: c.role for c in cards}
    champion = next((n for n, r in roles.items() if r == "champion"), None)
    if champion is None or champion not in live.probas:
        return Recommendation("none", "the newest export has no champion in the log")
    share = float(last["canary_share"]) if mode == "canary" else 0.0
    if mode == "canary":
        subject = str(last["canary"])
    else:
        challengers = [n for n, r in roles.items() if r == "challenger" and n in live.probas]
        if not challengers:
            return _champion_alone(live, cards, task, champion, period)
        subject = max(challengers, key=lambda n: _metric_on(live, n, champion, period, task))
    figures = _figures(live, subject, champion, period, task, share)
    action, rule = decide(figures)
    plan, step = _plan(action, mode, subject, share)
    return Recommendation(action, rule, subject, champion, mode, share, figures, plan, step)


def _metric_on(live: LiveData, model: str, champion: str, period: np.ndarray, task: str
               ) -> float:
    rows = _paired(live, [model, champion], period)
    value = live_metric(live.probas[model][rows], live.y[rows], task)[0]
    return value if math.isfinite(value) else -math.inf


def _allocation_period(live: LiveData) -> np.ndarray:
    """The requests of the trailing run of batches with the newest allocation."""
    frame = live.requests
    setting = [f"{m}|{c}|{s}" for m, c, s in zip(frame["mode"], frame["canary"],
                                                  frame["canary_share"], strict=True)]
    batches = frame.assign(setting=setting).groupby("batch_id", sort=True)["setting"].first()
    newest = batches.iloc[-1]
    start = batches.index[-1]
    for batch_id, value in reversed(list(batches.items())):
        if value != newest:
            break
        start = batch_id
    return (frame["batch_id"] >= start).to_numpy()


def _figures(live: LiveData, subject: str, baseline: str, period: np.ndarray, task: str,
             share: float) -> RuleFigures:
    rows = _paired(live, [subject, baseline], period)
    at = live.requests["at"][period]
    days = (at.max() - at.min()).total_seconds() / 86400 if period.any() else 0.0
    return RuleFigures(
        outcomes=int(rows.sum()), days=days, min_days=min_days(share),
        live=live_metric(live.probas[subject][rows], live.y[rows], task)[0],
        baseline_live=live_metric(live.probas[baseline][rows], live.y[rows], task)[0],
        error_rate=float(live.failed[subject][period].mean()) if period.any() else 0.0,
        latency_ms=float(np.nanmean(live.latency[subject][period])),
        baseline_latency_ms=float(np.nanmean(live.latency[baseline][period])))


def _champion_alone(live: LiveData, cards: list[ModelCard], task: str, champion: str,
                    period: np.ndarray) -> Recommendation:
    """Without challengers the champion is held to its holdout metric's lower bound."""
    card = next(c for c in cards if c.model_name == champion)
    key = metric_name(task)
    holdout_low = card.metrics[key].low if key in card.metrics else None
    rows = _paired(live, [champion], period)
    at = live.requests["at"][period]
    figures = RuleFigures(
        outcomes=int(rows.sum()), days=(at.max() - at.min()).total_seconds() / 86400,
        min_days=min_days(0.0),
        live=live_metric(live.probas[champion][rows], live.y[rows], task)[0],
        baseline_live=holdout_low if holdout_low is not None else math.nan,
        error_rate=float(live.failed[champion][period].mean()),
        latency_ms=float(np.nanmean(live.latency[champion][period])),
        baseline_latency_ms=math.nan)
    action, rule = decide(figures)
    if action == "increase":
        return Recommendation("keep", "the champion holds its holdout level; no challenger "
                              "to test", champion, "holdout lower bound", "champion", 0.0,
                              figures)
    plan = ("roll back to the previous champion" if action == "rollback" else None)
    return Recommendation(action, rule, champion, "holdout lower bound", "champion", 0.0,
                          figures, plan, ("rollback",) if plan else ())


def _plan(action: Action, mode: str, subject: str, share: float) -> tuple[str | None, tuple]:
    if action == "wait":
        return None, ()
    if mode == "canary":
        if action == "rollback":
            return f"stop the canary {subject}: champion mode", ("deploy", "champion", None, None)
        following = next_canary_share(share)
        if following is None:
            return (f"make {subject} the champion (the old one is archived), champion mode",
                    ("champion", subject))
        return (f"raise the canary {subject} from {share:.0%} to {following:.0%}",
                ("deploy", "canary", subject, following))
    if action == "rollback":
        return f"take the challenger {subject} out of production (archived)", ("demote", subject)
    return (f"start {subject} as a canary at {CANARY_STEPS[0]:.0%}",
            ("deploy", "canary", subject, CANARY_STEPS[0]))


# --- drift -------------------------------------------------------------------------------

def drift(models_dir: Path, scope: str, live: LiveData) -> pd.DataFrame:
    """PSI per feature of the inputs logged under the newest export, most moved first."""
    files = cards_files(Path(models_dir), scope)
    if live.empty or not files:
        return pd.DataFrame(columns=["feature", "psi", "flagged", "rows", "bins"])
    newest = files[-1]
    stats = read_feature_stats(feature_stats_path(newest))
    rows = (live.requests["export"] == newest.name).to_numpy()
    if not rows.any():
        rows = np.ones(len(rows), dtype=bool)
    return drift_table(stats, live.inputs[rows], live.features)


# --- applying, with the lifecycle --------------------------------------------------------

def apply_recommendation(models_dir: Path, scope_name: str, store: Store,
                         recommendation: Recommendation, *, actor: str, reason: str) -> str:
    """Carry out the recommendation through the lifecycle (recorded with ``reason``), then
    export again so the engine serves the new decision. Returns what was done."""
    from ._service import export_scope, latest_weights_method, scope_state

    if not recommendation.step:
        raise InvalidInputError(f"nothing to apply: {recommendation.action} "
                                f"({recommendation.rule})")
    if not reason.strip():
        raise InvalidInputError("a reason is required to apply a recommendation (field "
                                "'reason')")
    why = f"{recommendation.action}: {recommendation.rule}. {reason}"
    state = scope_state(models_dir, scope_name, store)
    kind = recommendation.step[0]
    if kind == "deploy":
        _, mode, canary, share = recommendation.step
        set_deployment(store, state.scope, mode, canary=canary, canary_share=share,
                       actor=actor, reason=why)
    elif kind == "champion":
        from ._lifecycle import make_champion

        make_champion(store, state.scope, state.evaluation, state.board,
                      recommendation.step[1], actor=actor, reason=why)
        set_deployment(store, state.scope, "champion", actor=actor, reason=why)
    elif kind == "demote":
        from ._lifecycle import demote

        demote(store, state.scope, state.evaluation, state.board, recommendation.step[1],
               actor=actor, reason=why)
    elif kind == "rollback":
        if previous_champion(store, scope_name) is None:
            raise InvalidInputError(f"scope '{scope_name}' has no previous champion to roll "
                                    "back to")
        rollback(store, state.scope, actor=actor, reason=why)
    export_scope(models_dir, scope_name, store, latest_weights_method(models_dir, scope_name))
    return str(recommendation.plan)


def deployment_summary(store: Store, scope: Scope) -> str:
    """The deployment in force, in words."""
    record = deployment_of(store, scope)
    if record.mode == "canary":
        return f"canary: {record.canary_model} answers {record.canary_share:.0%} of requests"
    return f"{record.mode} mode"


# --- a replay of holdout rows as traffic -------------------------------------------------

@dataclass(frozen=True)
class SimulationReport:
    """What a simulation served and joined."""

    requests: int
    first_at: datetime
    last_at: datetime
    outcomes: OutcomeReport
    drifted: str | None


def parse_drift(text: str) -> tuple[str, float]:
    """``FEATURE:SHIFT`` (shift in standard deviations of the feature on the holdout)."""
    name, sep, shift = text.rpartition(":")
    try:
        value = float(shift)
    except ValueError:
        value = math.nan
    if not sep or not name or not math.isfinite(value):
        raise InvalidInputError(f"--drift '{text}': expected FEATURE:SHIFT, e.g. f3:1.5 "
                                "(shift in the feature's standard deviations)")
    return name, value


def simulate(models_dir: Path, scope_name: str, requests: int, *,
             drift: tuple[str, float] | None = None, seed: int = 0, days: float = 8.0,
             batch_rows: int = 200, end: datetime | None = None) -> SimulationReport:
    """Replay ``requests`` holdout rows (drawn with ``seed``) through the engine as requests
    spread evenly over the ``days`` before ``end``, then join their true labels.

    With ``drift`` the named feature is shifted by that many of its standard deviations.
    """
    from ._discovery import load_scope
    from .engine import PredictionEngine

    if requests < 1:
        raise InvalidInputError(f"--requests {requests}: must be at least 1")
    if not (math.isfinite(days) and days > 0):
        raise InvalidInputError(f"--days {days:g}: must be more than 0")
    holdout = load_scope(models_dir, scope_name).load_holdout()
    rng = np.random.default_rng(seed)
    picked = rng.integers(0, len(holdout.y), size=requests)
    frame = holdout.features.iloc[picked].reset_index(drop=True)
    if drift is not None:
        name, shift = drift
        if name not in frame.columns:
            raise InvalidInputError(f"--drift: scope '{scope_name}' has no feature '{name}'")
        column = pd.to_numeric(holdout.features[name], errors="coerce")
        frame[name] = pd.to_numeric(frame[name], errors="coerce") + shift * column.std()
    finish = (end or datetime.now(UTC)).timestamp()
    times = finish - days * 86400 + np.arange(requests) * (days * 86400 / requests)
    run = f"sim-{seed}-{int(finish)}-{rng.integers(1 << 30):08x}"
    ids = [f"{run}-{i:06d}" for i in range(requests)]
    engine = PredictionEngine.load(scope_name, models_dir)
    try:
        for start in range(0, requests, batch_rows):
            stop = min(start + batch_rows, requests)
            engine.serve(frame.iloc[start:stop], ids[start:stop], times=times[start:stop])
    finally:
        engine.close()
    labels = pd.DataFrame({"request_id": ids, "label": [str(v) for v in holdout.y[picked]]})
    joined = record_outcomes(models_dir, scope_name, labels, source=f"simulate {run}")
    return SimulationReport(requests, datetime.fromtimestamp(times[0], UTC),
                            datetime.fromtimestamp(times[-1], UTC), joined,
                            drift[0] if drift else None)
