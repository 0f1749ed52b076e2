"""Strength, known bias and recommended use, derived from evidence on the holdout.

A slice is the rows of one true class or of one bin of one feature (quartiles; each value for
a feature with few values or of a category; the rows where it is missing). A slice is a
finding when the model's loss there differs from its own overall loss by at least 5%
(relative), on at least 20 rows, and the difference is
significant (Holm-corrected over every slice tested, p < 0.05). The loss is the error rate for
multiclass scopes, tested with Fisher's exact test of the slice against the other rows, and
the log loss for binary ones, tested with Welch's t-test. Slices hold at most half of the rows:
a finding about a majority is better told about the minority it leaves out. When no slice
passes the bars in a direction, the slice furthest from the average that way is told anyway,
marked "not significant", so the card still says where the model is stronger or weaker.
Intervals are 95% normal intervals of the slice's mean loss.

A regression model is asked two questions of each slice (each feature's bins as above, and
the quartiles of its own predicted value; never bins of the actual target: any model short of
perfect regresses to the mean, so it "over-predicts low actual values" whatever its features
say). Known bias: is its mean residual (predicted − actual) there different from the other
rows', by Welch's t-test, by at least 5% of its overall RMSE, and away from 0 (its interval
excludes 0: a slice merely less biased than the rest is no bias)? Strength: is its absolute
error there lower than the other rows', by Welch's t-test, with an MAE at least 5% lower? (The
absolute error, not the squared one: squared errors are so skewed that Welch's test on them
finds differences in pure noise more often than α says.) Each question is one Holm family over
the slices. Figures are in the target's units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..evaluation._bootstrap import row_statistics
from ..evaluation._results import RowPredictions
from ..metrics import holm
from ..scopes._discovery import Holdout
from ..vocabulary import is_regression, task_rules

if TYPE_CHECKING:  # pandas loads where a frame is built; a cached leaderboard needs none
    import pandas as pd

MIN_ROWS = 20
MIN_RELATIVE = 0.05
ALPHA = 0.05
MAX_FEATURE_BINS = 4
INSUFFICIENT = "insufficient evidence"
LATENCY_BUDGET_MS = 500.0

#: What a finding measures: ``loss``, the classification task's loss (error or log loss);
#: for regression, ``absolute_error`` (its mean is the MAE) or ``residual`` (predicted −
#: actual: its mean is the bias).
Measure = Literal["loss", "absolute_error", "residual"]


@dataclass(frozen=True)
class SliceFinding:
    """Where a model is clearly better (negative effect) or worse than its own average; for a
    ``residual`` finding, where it predicts higher (positive) or lower than elsewhere."""

    description: str
    rows: int
    slice_loss: float  # the slice's mean of the measure
    overall_loss: float  # the mean over every row
    p_value: float
    low: float = float("nan")  # 95% interval of the slice's mean
    high: float = float("nan")
    measure: Measure = "loss"
    #: The unit a ``residual`` finding's effect is measured in: the model's overall RMSE.
    scale: float = float("nan")

    @property
    def significant(self) -> bool:
        """Passes the effect and significance bars; a residual slice must also be biased in
        itself (its interval excludes 0), not only less biased than the other rows."""
        if self.measure == "residual" and self.low <= 0 <= self.high:
            return False
        return self.p_value < ALPHA and abs(self.relative) >= MIN_RELATIVE

    @property
    def relative(self) -> float:
        """The effect: the relative change of the loss; for residuals, the shift of the mean
        residual in units of the overall RMSE."""
        if self.measure == "residual":
            return (self.slice_loss - self.overall_loss) / self.scale
        return (self.slice_loss - self.overall_loss) / self.overall_loss


def _slices(holdout: Holdout) -> list[tuple[str, np.ndarray]]:
    found = [(f"true class {label}", holdout.y_index == i)
             for i, label in enumerate(holdout.classes)]
    for column in holdout.features.columns:
        found += _feature_slices(str(column), holdout.features[column])
    return found


def _feature_slices(column: str, series: pd.Series) -> list[tuple[str, np.ndarray]]:
    """One feature's slices: each value of a category (or of a feature with few values),
    else quartile bins; missing values are a slice of their own."""
    import pandas as pd

    missing = series.isna().to_numpy()
    found = [(f"{column} is missing", missing)] if missing.any() else []
    if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        labels = series.astype(str).to_numpy(dtype=object)
        distinct = sorted(set(labels[~missing].tolist()))
        if len(distinct) > 1:
            found += [(f"{column} = {value}", ~missing & (labels == value))
                      for value in distinct]
        return found
    values = series.to_numpy(dtype=float)
    present = values[~missing]
    distinct = np.unique(present)
    if len(distinct) <= 1:
        return found
    if len(distinct) <= 12:
        return found + [(f"{column} = {value:g}", values == value) for value in distinct]
    edges = np.unique(np.quantile(present, np.linspace(0, 1, MAX_FEATURE_BINS + 1)))
    bins = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    return found + [(f"{column} in [{edges[b]:.4g}, {edges[b + 1]:.4g}]", ~missing & (bins == b))
                    for b in range(len(edges) - 1)]


def slice_findings(rows: RowPredictions, holdout: Holdout, task: str, *,
                   target: str = "target") -> list[SliceFinding]:
    """Every slice that passes the size, effect and significance bars, strongest first."""
    return [f for f in slice_tests(rows, holdout, task, target=target) if f.significant]


def slice_tests(rows: RowPredictions, holdout: Holdout, task: str, *,
                target: str = "target") -> list[SliceFinding]:
    """Every slice of a testable size with its Holm-corrected p-value, strongest first; for
    regression, the residual findings first, then the absolute-error ones. ``target`` names
    a regression scope's target (its predicted-value slices)."""
    if is_regression(task):
        return _regression_tests(rows.predicted, holdout, target)
    per_row = row_statistics(rows.proba, holdout.y_index)
    by_log_loss = task_rules(task).slice_loss == "log_loss"
    loss = per_row["loss"] if by_log_loss else 1.0 - per_row["correct"]
    overall = float(loss.mean())
    if overall <= 0:
        return []
    candidates = [(name, mask) for name, mask in _slices(holdout)
                  if MIN_ROWS <= mask.sum() <= len(loss) // 2]
    if not candidates:
        return []
    masks = np.array([mask for _, mask in candidates], dtype=float)
    inside_n = masks.sum(axis=1)
    inside_mean = masks @ loss / inside_n
    inside_var = np.maximum(masks @ loss**2 / inside_n - inside_mean**2, 0.0)
    margin = 1.96 * np.sqrt(inside_var / inside_n)
    p = _welch(masks, loss) if by_log_loss else _fisher(masks, loss)
    adjusted = holm(p)
    tested = [
        SliceFinding(name, int(inside_n[i]), float(inside_mean[i]), overall, float(adjusted[i]),
                     float(inside_mean[i] - margin[i]), float(inside_mean[i] + margin[i]))
        for i, (name, _) in enumerate(candidates)]
    return sorted(tested, key=lambda f: -abs(f.relative))


def _regression_tests(predicted: np.ndarray, holdout: Holdout, target: str
                      ) -> list[SliceFinding]:
    residual = predicted - holdout.y
    mse = float((residual ** 2).mean())
    if mse <= 0:  # a perfect model has no slice to tell apart
        return []
    import pandas as pd

    found = [pair for column in holdout.features.columns
             for pair in _feature_slices(str(column), holdout.features[column])]
    found += _feature_slices(f"predicted {target}", pd.Series(predicted))
    candidates = [(name, mask) for name, mask in found
                  if MIN_ROWS <= mask.sum() <= len(residual) // 2]
    if not candidates:
        return []
    names = [name for name, _ in candidates]
    masks = np.array([mask for _, mask in candidates], dtype=float)
    # Shifted by the mean, so targets far from 0 lose no precision in the variances.
    bias = _tested(names, masks, residual - residual.mean(), "residual",
                   shift=float(residual.mean()), scale=math.sqrt(mse))
    error = _tested(names, masks, np.abs(residual), "absolute_error")
    return (sorted(bias, key=lambda f: -abs(f.relative))
            + sorted(error, key=lambda f: -abs(f.relative)))


def _tested(names: list[str], masks: np.ndarray, values: np.ndarray, measure: Measure, *,
            shift: float = 0.0, scale: float = float("nan")) -> list[SliceFinding]:
    """Each slice's mean of ``values`` (+ ``shift``) with its 95% interval, tested against
    the other rows' by Welch's t-test, Holm-corrected over the slices."""
    inside_n = masks.sum(axis=1)
    inside_mean = masks @ values / inside_n
    inside_var = np.maximum(masks @ values**2 / inside_n - inside_mean**2, 0.0)
    margin = 1.96 * np.sqrt(inside_var / inside_n)
    adjusted = holm(_welch(masks, values))
    overall = float(values.mean()) + shift
    return [SliceFinding(name, int(inside_n[i]), float(inside_mean[i]) + shift, overall,
                         float(adjusted[i]), float(inside_mean[i] - margin[i]) + shift,
                         float(inside_mean[i] + margin[i]) + shift, measure, scale)
            for i, name in enumerate(names)]


def _fisher(masks: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """Two-sided Fisher exact p-value of each slice's error count against the other rows'."""
    from scipy import stats  # here: SciPy's import is slow and cards are made on demand

    inside_errors = masks @ errors
    inside_n = masks.sum(axis=1)
    total_errors, total = errors.sum(), len(errors)
    return np.array([
        stats.fisher_exact([[e, n - e], [total_errors - e, total - n - (total_errors - e)]])[1]
        for e, n in zip(inside_errors.round().astype(int), inside_n.astype(int), strict=True)
    ])


def _welch(masks: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Two-sided Welch t-test p-value of each slice's mean loss against the other rows'."""
    from scipy import stats  # here: SciPy's import is slow and cards are made on demand

    inside_n = masks.sum(axis=1)
    outside_n = len(loss) - inside_n
    inside_mean = masks @ loss / inside_n
    outside_mean = (1 - masks) @ loss / outside_n
    inside_var = (masks @ loss**2 - inside_n * inside_mean**2) / (inside_n - 1)
    outside_var = ((1 - masks) @ loss**2 - outside_n * outside_mean**2) / (outside_n - 1)
    se2 = np.maximum(inside_var, 0) / inside_n + np.maximum(outside_var, 0) / outside_n
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (inside_mean - outside_mean) / np.sqrt(se2)
        dof = se2**2 / ((np.maximum(inside_var, 0) / inside_n) ** 2 / (inside_n - 1)
                        + (np.maximum(outside_var, 0) / outside_n) ** 2 / (outside_n - 1))
    return np.where(np.isfinite(t), 2 * stats.t.sf(np.abs(t), np.nan_to_num(dof, nan=1.0)),
                    1.0)


def describe_findings(tested: list[SliceFinding], task: str, *, better: bool,
                      target: str = "target") -> str:
    """One or two sentences on the strongest slices in one direction: the significant ones,
    else the furthest one marked "not significant"; 'insufficient evidence' when none.

    For regression, the better direction is a lower absolute error, the other a bias:
    a slice whose mean residual lies further from 0 than the overall one, in the direction it
    differs (over- or under-prediction)."""
    if is_regression(task):
        way = ([f for f in tested if f.measure == "absolute_error" and f.relative < 0] if better
               else [f for f in tested if f.measure == "residual" and _told_as_bias(f)])
    else:
        way = [f for f in tested if (f.relative < 0) == better and f.relative != 0]
    chosen = [f for f in way if f.significant][:2] or way[:1]
    if not chosen:
        return INSUFFICIENT
    return "; ".join(_sentence(f, task, target) for f in chosen)


def _told_as_bias(finding: SliceFinding) -> bool:
    """A residual slice that is more biased than the rows overall, in the direction it
    differs: over-predicted (mean residual > 0, and above the overall one) or under-."""
    shift = finding.slice_loss - finding.overall_loss
    return shift != 0 and finding.slice_loss * shift > 0


def _sentence(finding: SliceFinding, task: str, target: str = "target") -> str:
    if finding.measure != "loss":
        return _regression_sentence(finding, target)
    if task_rules(task).slice_loss == "log_loss":
        level = (f"log loss {finding.slice_loss:.3f} [{finding.low:.3f}, {finding.high:.3f}] "
                 f"vs {finding.overall_loss:.3f} overall")
        what = "loss"
    else:
        level = (f"accuracy {1 - finding.slice_loss:.1%} [{1 - finding.high:.1%}, "
                 f"{1 - finding.low:.1%}] vs {1 - finding.overall_loss:.1%} overall")
        what = "error"
    direction = "lower" if finding.relative < 0 else "higher"
    verdict = "" if finding.significant else ", not significant"
    return (f"{finding.description} ({finding.rows} rows): {level} "
            f"({abs(finding.relative):.0%} {direction} {what}, p={finding.p_value:.2g}"
            f"{verdict})")


def _regression_sentence(finding: SliceFinding, target: str) -> str:
    verdict = "" if finding.significant else ", not significant"
    if finding.measure == "residual":
        over = finding.slice_loss > 0
        size, low, high = ((finding.slice_loss, finding.low, finding.high) if over
                           else (-finding.slice_loss, -finding.high, -finding.low))
        return (f"{'over' if over else 'under'}-predicts {target} by {size:.3g} "
                f"[{low:.3g}, {high:.3g}] where {finding.description} ({finding.rows} rows, "
                f"mean residual {finding.overall_loss:+.3g} overall, p={finding.p_value:.2g}"
                f"{verdict})")
    direction = "lower" if finding.relative < 0 else "higher"
    return (f"{finding.description} ({finding.rows} rows): MAE {finding.slice_loss:.3g} "
            f"[{max(finding.low, 0.0):.3g}, {finding.high:.3g}] vs {finding.overall_loss:.3g} "
            f"overall ({abs(finding.relative):.0%} {direction} error, p={finding.p_value:.2g}"
            f"{verdict})")


def recommended_use(model_name: str, board_rows: pd.DataFrame, weight: float | None, *,
                    skilled: bool) -> str:
    """Advice from skill, rank, ties, latency and ensemble weight (see README); ``skilled``
    is the scope's one significance rule (``scoring.skilled_models``)."""
    row = board_rows.set_index("model_name").loc[model_name]
    notes: list[str] = []
    if not skilled:
        notes.append("No evidence of skill: not significantly better than chance level on "
                     "this holdout (Holm-corrected over the scope's models), so not for "
                     "decisions that need skill")
    contenders = board_rows[(board_rows["rank"] == 1) | board_rows["tied_with_leader"]]
    fastest = contenders.sort_values(["latency_p95_ms", "rank"]).iloc[0]["model_name"]
    if row["rank"] == 1:
        notes.append("Leader on the composite score: primary model for balanced use" if skilled
                     else "Leader on the composite score, by a margin chance can explain")
    elif row["tied_with_leader"]:
        notes.append("Statistically tied with the leader")
    else:
        notes.append("Below the leader beyond sampling noise: use for diversity in an "
                     "ensemble or as a fallback")
    if skilled and model_name == fastest and len(contenders) > 1:
        notes.append("Fastest of the models tied with the leader: primary for latency-bound "
                     "use")
    if row["latency_p95_ms"] > LATENCY_BUDGET_MS:
        notes.append(f"p95 latency {row['latency_p95_ms']:.0f} ms is above "
                     f"{LATENCY_BUDGET_MS:.0f} ms: batch use only")
    if weight is not None:
        notes.append(f"Ensemble weight {weight:.1%}")
    return ". ".join(notes) + "."
