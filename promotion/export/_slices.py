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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..evaluation._bootstrap import row_statistics
from ..evaluation._results import RowPredictions
from ..metrics import holm
from ..scopes._discovery import Holdout
from ..vocabulary import task_rules

if TYPE_CHECKING:  # pandas loads where a frame is built; a cached leaderboard needs none
    import pandas as pd

MIN_ROWS = 20
MIN_RELATIVE = 0.05
ALPHA = 0.05
MAX_FEATURE_BINS = 4
INSUFFICIENT = "insufficient evidence"
LATENCY_BUDGET_MS = 500.0


@dataclass(frozen=True)
class SliceFinding:
    """Where a model is clearly better (negative effect) or worse than its own average."""

    description: str
    rows: int
    slice_loss: float
    overall_loss: float
    p_value: float
    low: float = float("nan")  # 95% interval of the slice's loss
    high: float = float("nan")

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA and abs(self.relative) >= MIN_RELATIVE

    @property
    def relative(self) -> float:
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


def slice_findings(rows: RowPredictions, holdout: Holdout, task: str) -> list[SliceFinding]:
    """Every slice that passes the size, effect and significance bars, strongest first."""
    return [f for f in slice_tests(rows, holdout, task) if f.significant]


def slice_tests(rows: RowPredictions, holdout: Holdout, task: str) -> list[SliceFinding]:
    """Every slice of a testable size with its Holm-corrected p-value, strongest first."""
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


def describe_findings(tested: list[SliceFinding], task: str, *, better: bool) -> str:
    """One or two sentences on the strongest slices in one direction: the significant ones,
    else the furthest one marked "not significant"; 'insufficient evidence' when none."""
    way = [f for f in tested if (f.relative < 0) == better and f.relative != 0]
    chosen = [f for f in way if f.significant][:2] or way[:1]
    if not chosen:
        return INSUFFICIENT
    return "; ".join(_sentence(f, task) for f in chosen)


def _sentence(finding: SliceFinding, task: str) -> str:
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
