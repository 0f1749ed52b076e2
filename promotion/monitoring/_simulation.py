"""A replay of holdout rows as traffic: served by the engine, logged, with their outcomes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..engine._engine import PredictionEngine
from ..errors import InvalidInputError
from ..scopes._discovery import load_scope
from ._outcomes import OutcomeReport, record_outcomes


@dataclass(frozen=True)
class SimulationReport:
    """What a simulation served and joined."""

    requests: int
    first_at: datetime
    last_at: datetime
    outcomes: OutcomeReport
    drifted: str | None

    def summary(self) -> str:
        """What was served and logged, in one line."""
        return (f"{self.requests} requests served and logged, {self.first_at:%Y-%m-%d %H:%M} "
                f"to {self.last_at:%Y-%m-%d %H:%M} UTC"
                + (f", feature {self.drifted} drifted" if self.drifted else ""))


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
    import pandas as pd

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
