"""Evaluation on a Dask cluster (two local worker processes) measures what the local run does."""

from __future__ import annotations

import numpy as np
import pytest
from processes import plain_main

from promotion import InvalidInputError
from promotion.evaluation import evaluate_scope, load_row_predictions
from promotion.evaluation._runner import DASK_SCHEDULER_SETTING
from promotion.metrics import METRICS
from promotion.scopes import load_scope
from promotion.store import open_store

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    import dask

    # Worker processes import scikit-learn before they answer; on two busy cores that can take
    # longer than dask's default connect timeout.
    with plain_main(), dask.config.set({"distributed.comm.timeouts.connect": "120s",
                                        "distributed.comm.timeouts.tcp": "120s"}), \
            distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                     dashboard_address=None) as running:
        yield running


def test_a_dask_cluster_measures_the_same_as_local_processes(tiny_scope, models_root, tmp_path,
                                                             cluster, monkeypatch):
    scope = load_scope(models_root, "tiny")
    local_store = open_store(models_root, f"sqlite:///{tmp_path / 'local.db'}")
    dask_store = open_store(models_root, f"sqlite:///{tmp_path / 'dask.db'}")
    local = evaluate_scope(scope, local_store)
    monkeypatch.setenv(DASK_SCHEDULER_SETTING, cluster.scheduler_address)
    transitions_before = cluster.scheduler.transition_counter
    remote = evaluate_scope(scope, dask_store)

    assert remote.evaluated == local.evaluated == len(scope.models)
    assert cluster.scheduler.transition_counter > transitions_before  # the cluster did the work
    assert len(cluster.scheduler.workers) == 2
    # Quality metrics, their intervals and every row's probabilities are identical; timings
    # and memory are measurements of the machine at that moment, so only their presence counts.
    deterministic = [n for n, m in METRICS.items() if m.kind == "quality"] + ["artifact_size_mb"]
    for mine, theirs in zip(local.models, remote.models, strict=True):
        assert mine.ok and theirs.ok
        for name in deterministic:
            if name in mine.metrics:
                assert theirs.metrics[name] == mine.metrics[name], name
                assert theirs.intervals[name] == mine.intervals[name], name
        assert set(theirs.metrics) == set(mine.metrics)
        np.testing.assert_array_equal(load_row_predictions(dask_store, theirs).proba,
                                      load_row_predictions(local_store, mine).proba)
    local_store.close()
    dask_store.close()


def test_an_unreachable_scheduler_is_one_clear_message(tiny_scope, models_root, store,
                                                       monkeypatch):
    from browser import free_port

    monkeypatch.setenv(DASK_SCHEDULER_SETTING, f"tcp://127.0.0.1:{free_port()}")
    with pytest.raises(InvalidInputError, match="cannot reach the Dask scheduler"):
        evaluate_scope(load_scope(models_root, "tiny"), store)
