"""A regression export for the serving and monitoring tests: cards written through the
contract (``make_card`` / ``write_cards``) over the diabetes scope's real fitted regressors,
carrying the holdout metrics the project measured, with the feature statistics drift reads.

It stands in for ``export_scope`` where a test needs a deployment (roles, shares, weights)
chosen directly rather than decided through the lifecycle.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from factories import make_card, write_cards

from promotion.contract import MetricValue, feature_stats_path
from promotion.evaluation import evaluate_scope
from promotion.monitoring import feature_stats
from promotion.scopes import load_scope
from promotion.store import Store

SCOPE = "diabetes"


def measured_metrics(root: Path, store: Store, scope: str = SCOPE
                     ) -> dict[str, dict[str, MetricValue]]:
    """Each model's holdout metrics with their bootstrap intervals, as evaluation measured
    them."""
    evaluation = evaluate_scope(load_scope(root, scope), store, n_jobs=1)
    return {m.model_name: {name: MetricValue(value=value, low=m.intervals.get(name, (None,))[0],
                                             high=m.intervals.get(name, (None, None))[1])
                           for name, value in m.metrics.items()}
            for m in evaluation.models if m.ok}


def regression_export(root: Path, store: Store, weights: dict[str, float], *,
                      mode: str = "ensemble", roles: dict[str, str] | None = None,
                      share: float = 0.0, scope: str = SCOPE) -> Path:
    """``weights``' models of the scope served in ``mode`` (``roles``: champion, challenger,
    canary), as the newest export; returns its cards file."""
    metrics = measured_metrics(root, store, scope)
    cards = []
    for name, weight in weights.items():
        role = (roles or {}).get(name, "member")
        traffic = {"member": 1.0, "challenger": 0.0, "canary": share,
                   "champion": 1.0 - share if mode == "canary" else 1.0}[role]
        cards.append(make_card(root, name, scope=scope, ensemble_weight=weight,
                               metrics=metrics[name], rmse=metrics[name]["rmse"].value,
                               deployment_mode=mode, role=role, traffic_share=traffic,
                               is_champion=role == "champion"))
    path = write_cards(root, cards, scope=scope)
    stats = feature_stats(scope, load_scope(root, scope).load_holdout().features,
                          datetime.now(UTC))
    stats_path = feature_stats_path(path)
    stats_path.parent.mkdir(parents=True, exist_ok=True)
    stats_path.write_text(stats.model_dump_json())
    return path
