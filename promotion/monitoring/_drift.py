"""Feature statistics saved at export, and the population stability index on logged inputs.

At export each feature of the holdout gets bins: up to ten quantile bins for a numeric
feature with many values, one bin per value for a feature with few (integer codes) and for a
text category (by its ``category_code``), plus a bin for missing values. The expected share of
each bin is saved beside the cards; the PSI of logged inputs against it is
``sum((actual - expected) * ln(actual / expected))``.

Logged inputs are float32, the holdout float64: a value within ``MATCH_TOLERANCE`` (relative)
of a bin's value or cut point counts as that value. Below ``MIN_DRIFT_ROWS`` logged rows no
verdict is given ("not enough rows"): a handful of requests moves any share.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..contract import cards_files, feature_stats_path
from ..engine._align import category_code, input_numbers
from ..errors import InvalidInputError

if TYPE_CHECKING:  # pandas loads where a frame is built; a cached leaderboard needs none
    import pandas as pd

    from ._live import LiveData

N_BINS = 10
MAX_CATEGORIES = 12
PSI_FLAG = 0.2
#: Fewer logged rows than this give no drift verdict.
MIN_DRIFT_ROWS = 100
#: Relative distance within which a logged value counts as a bin's value (float32 keeps ~7
#: digits; a holdout value and its logged float32 copy differ by less than 1e-7 relative).
MATCH_TOLERANCE = 1e-6
NOT_ENOUGH_ROWS = "not enough rows"
DRIFT_COLUMNS = ["feature", "psi", "flagged", "verdict", "rows", "bins"]
#: Empty bins are floored at this share so the logarithm stays finite.
_FLOOR = 1e-4


class FeatureBins(BaseModel):
    """One feature's bins and the holdout's share in each (the last bin: missing values)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["quantile", "values", "categories"]
    edges: list[float] = Field(description="Quantile: inner cut points; values: the values; "
                                           "categories: their codes.")
    expected: list[float]
    labels: list[str] | None = Field(default=None,
                                     description="Categories: each code's text, in order.")


class FeatureStats(BaseModel):
    """The feature statistics of one export (paired with its cards by name)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    scope: str
    generated_at: datetime
    rows: int
    features: list[FeatureBins]


def feature_stats(scope: str, features: pd.DataFrame, now: datetime) -> FeatureStats:
    """Bins and expected shares of every feature column of ``features``."""
    import pandas as pd

    numbers = input_numbers(features)
    binned = []
    for k, column in enumerate(features.columns):
        series = features[column]
        if pd.api.types.is_numeric_dtype(series):
            binned.append(_bins(str(column), numbers[:, k]))
        else:
            binned.append(_category_bins(str(column), series, numbers[:, k]))
    return FeatureStats(scope=scope, generated_at=now, rows=len(features), features=binned)


def _bins(name: str, values: np.ndarray) -> FeatureBins:
    present = values[np.isfinite(values)]
    distinct = np.unique(present)
    if len(distinct) <= MAX_CATEGORIES:
        bins = FeatureBins(name=name, kind="values", edges=distinct.tolist(), expected=[])
    else:
        cuts = np.unique(np.quantile(present, np.linspace(0, 1, N_BINS + 1)[1:-1]))
        bins = FeatureBins(name=name, kind="quantile", edges=cuts.tolist(), expected=[])
    bins.expected = bin_shares(bins, values).tolist()
    return bins


def _category_bins(name: str, series: pd.Series, codes: np.ndarray) -> FeatureBins:
    labels = sorted({str(v) for v in series.dropna().tolist()}, key=category_code)
    bins = FeatureBins(name=name, kind="categories", edges=[category_code(v) for v in labels],
                       expected=[], labels=labels)
    bins.expected = bin_shares(bins, codes).tolist()
    return bins


def bin_shares(bins: FeatureBins, values: np.ndarray) -> np.ndarray:
    """The share of ``values`` in each of ``bins`` (the last entry: missing values)."""
    return bin_counts(bins, values) / max(len(values), 1)


def bin_counts(bins: FeatureBins, values: np.ndarray) -> np.ndarray:
    """How many of ``values`` fall in each of ``bins`` (the last entry: missing values)."""
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    edges = np.asarray(bins.edges, dtype=float)
    present = values[finite] if bins.kind == "categories" else _snapped(values[finite], edges)
    if bins.kind == "quantile":
        index = np.searchsorted(edges, present, side="right")
    else:  # a value never seen in the holdout counts in an extra "other" bin
        position = np.searchsorted(edges, present)
        # A holdout column with no finite value has no edges: every live value is "other".
        known = (position < len(edges)) & (edges[np.minimum(position, len(edges) - 1)]
                                           == present) if len(edges) else (
            np.zeros(len(position), dtype=bool))
        index = np.where(known, position, len(edges))
    counts = np.bincount(index, minlength=len(edges) + 1).astype(float)
    return np.append(counts, float((~finite).sum()))


def _snapped(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``values``, each replaced by the nearest of ``edges`` (sorted) when within
    ``MATCH_TOLERANCE`` of it: a logged float32 copy of a holdout value is that value."""
    if not len(edges) or not len(values):
        return values
    at = np.searchsorted(edges, values)
    below = edges[np.clip(at - 1, 0, len(edges) - 1)]
    above = edges[np.clip(at, 0, len(edges) - 1)]
    nearest = np.where(np.abs(values - below) <= np.abs(above - values), below, above)
    close = np.abs(values - nearest) <= MATCH_TOLERANCE * np.maximum(1.0, np.abs(nearest))
    return np.where(close, nearest, values)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of ``actual`` shares against ``expected`` shares."""
    e = np.maximum(np.asarray(expected, dtype=float), _FLOOR)
    a = np.maximum(np.asarray(actual, dtype=float), _FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def drift_table(stats: FeatureStats, inputs: np.ndarray, feature_names: list[str]
                ) -> pd.DataFrame:
    """PSI per feature of logged ``inputs`` (rows, features), most moved first."""
    return _streamed_table(stats, [inputs], feature_names)


def _streamed_table(stats: FeatureStats, chunks: Iterable[np.ndarray],
                    feature_names: list[str]) -> pd.DataFrame:
    """``drift_table`` of the rows of ``chunks`` taken together, counted chunk by chunk: the
    counts add up, so the result is the same as on the rows at once, in constant memory."""
    import pandas as pd

    column = {name: i for i, name in enumerate(feature_names)}
    used = [bins for bins in stats.features if bins.name in column]
    counts = [np.zeros(len(bins.expected)) for bins in used]
    rows = 0
    for chunk in chunks:
        rows += len(chunk)
        for total, bins in zip(counts, used, strict=True):
            total += bin_counts(bins, chunk[:, column[bins.name]])
    records = []
    for total, bins in zip(counts, used, strict=True):
        value = psi(np.asarray(bins.expected), total / max(rows, 1))
        if rows < MIN_DRIFT_ROWS:
            value, verdict = float("nan"), f"{NOT_ENOUGH_ROWS} ({rows} < {MIN_DRIFT_ROWS})"
        else:
            verdict = "drifted" if value > PSI_FLAG else "stable"
        records.append({"feature": bins.name, "psi": value, "flagged": verdict == "drifted",
                        "verdict": verdict, "rows": rows, "bins": len(bins.expected)})
    frame = pd.DataFrame.from_records(records, columns=DRIFT_COLUMNS)
    return frame.sort_values("psi", ascending=False, kind="stable",
                             na_position="last").reset_index(drop=True)


def read_feature_stats(path: Path) -> FeatureStats:
    """Read an export's feature statistics; a bad file raises one clear message."""
    try:
        return FeatureStats.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: file is missing (feature statistics of this "
                                "export). Hint: export again") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInputError(f"{path}: cannot be read ({err})") from None
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "(root)"
        raise InvalidInputError(f"{path}: field '{field}': {first['msg']}") from None


def drift(models_dir: Path, scope: str, live: LiveData) -> pd.DataFrame:
    """PSI per feature of the inputs logged under the newest export (all of ``live``'s if
    none was), most moved first. The inputs are streamed from the log, batch by batch."""
    import pandas as pd

    files = cards_files(Path(models_dir), scope)
    if live.empty or not files:
        return pd.DataFrame(columns=DRIFT_COLUMNS)
    newest = files[-1]
    stats = read_feature_stats(feature_stats_path(newest))
    logged = bool((live.requests["export"] == newest.name).any())
    return _streamed_table(stats, live.input_batches(newest.name if logged else None),
                           live.features)
