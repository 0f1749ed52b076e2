from __future__ import annotations

import hashlib

import numpy as np
import pytest
from factories import make_data, write_model
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    log_loss,
    roc_auc_score,
    top_k_accuracy_score,
)

from promotion.evaluation import evaluate_scope, load_row_predictions
from promotion.evaluation._bootstrap import (
    bootstrap_counts,
    row_statistics,
    weighted_auc,
    weighted_balanced_accuracy,
)
from promotion.scopes import file_sha256, load_scope


def _evaluate(root, name, store, **kwargs):
    return evaluate_scope(load_scope(root, name), store, **kwargs)


def test_metrics_match_an_independent_scikit_learn_recomputation(models_root, tiny_scope, store):
    evaluation = _evaluate(models_root, "tiny", store)
    holdout = load_scope(models_root, "tiny").load_holdout()
    for model in evaluation.models:
        assert model.ok, model.reason
        rows = load_row_predictions(store, model)
        # An independent prediction straight from the file, scored by scikit-learn.
        import joblib

        fitted = joblib.load(tiny_scope / model.model_name / "model.joblib")
        proba = fitted.predict_proba(holdout.features)
        np.testing.assert_allclose(rows.proba, proba, atol=1e-6)
        labels = np.arange(len(holdout.classes))
        expected_top5 = top_k_accuracy_score(holdout.y_index, proba, k=5, labels=labels)
        assert model.metrics["top_5_accuracy"] == pytest.approx(expected_top5, abs=1e-12)
        assert model.metrics["accuracy"] == pytest.approx(
            accuracy_score(holdout.y_index, proba.argmax(axis=1)))


def test_auc_matches_scikit_learn(models_root, binary_scope, store):
    import joblib

    evaluation = _evaluate(models_root, "bin", store)
    holdout = load_scope(models_root, "bin").load_holdout()
    for model in evaluation.models:
        fitted = joblib.load(binary_scope / model.model_name / "model.joblib")
        expected = roc_auc_score(holdout.y, fitted.predict_proba(holdout.features)[:, 1])
        assert model.metrics["roc_auc"] == pytest.approx(expected, abs=1e-9)
        low, high = model.intervals["roc_auc"]
        assert low <= model.metrics["roc_auc"] <= high


def _probabilities(n_rows: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(n_classes), size=n_rows)
    y = rng.integers(0, n_classes, size=n_rows)
    return proba, y


@pytest.mark.parametrize("n_classes", [2, 7, 49])
def test_per_row_statistics_average_to_the_scikit_learn_values(n_classes):
    proba, y = _probabilities(400, n_classes, seed=n_classes)
    stats = row_statistics(proba, y)
    labels = np.arange(n_classes)
    assert stats["correct"].mean() == pytest.approx(accuracy_score(y, proba.argmax(axis=1)))
    assert stats["loss"].mean() == pytest.approx(log_loss(y, y_proba=proba, labels=labels))
    if n_classes > 5:
        assert stats["top_k_hit"].mean() == pytest.approx(
            top_k_accuracy_score(y, proba, k=5, labels=labels))


def test_vectorized_bootstrap_equals_weighted_scikit_learn():
    proba, y = _probabilities(300, 2, seed=3)
    proba[:40] = proba[0]  # ties in the score
    counts = bootstrap_counts(len(y), 5, seed=1)
    aucs = weighted_auc(proba[:, 1], y == 1, counts)
    stats = row_statistics(proba, y)
    balanced = weighted_balanced_accuracy(stats["correct"], y, 2, counts)
    for b in range(5):
        assert aucs[b] == pytest.approx(roc_auc_score(y, proba[:, 1], sample_weight=counts[b]))
        assert balanced[b] == pytest.approx(
            balanced_accuracy_score(y, proba.argmax(axis=1), sample_weight=counts[b]))


def test_resamples_are_shared_and_reproducible():
    a = bootstrap_counts(100, 50, seed=7)
    assert np.array_equal(a, bootstrap_counts(100, 50, seed=7))
    assert (a.sum(axis=1) == 100).all()
    assert not np.array_equal(a, bootstrap_counts(100, 50, seed=8))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_second_run_evaluates_nothing_and_a_changed_file_is_evaluated_again(
        models_root, tiny_scope, store):
    first = _evaluate(models_root, "tiny", store, n_jobs=1)
    assert first.evaluated == 4
    again = _evaluate(models_root, "tiny", store, n_jobs=1)
    assert again.evaluated == 0
    assert all(m.cached for m in again.models)
    assert [m.metrics for m in again.models] == [m.metrics for m in first.models]

    X, y = make_data("multiclass", 600)
    write_model(tiny_scope, "logreg", LogisticRegression(C=0.01, max_iter=300).fit(X, y),
                model_type="logistic_regression", group="linear")
    changed = _evaluate(models_root, "tiny", store, n_jobs=1)
    assert changed.evaluated == 1
    assert {m.model_name for m in changed.models if not m.cached} == {"logreg"}


def test_a_fully_cached_scope_is_answered_without_reading_its_holdout(
        models_root, tiny_scope, store):
    """The holdout is hashed, not parsed, when the cache answers every model (an app restart
    on a large holdout); what the evaluation says of the rows is the same either way."""
    first = _evaluate(models_root, "tiny", store, n_jobs=1)
    reads = []

    def read_rows():
        reads.append(1)
        return load_scope(models_root, "tiny").load_holdout()

    cached = _evaluate(models_root, "tiny", store, n_jobs=1, holdout=read_rows)
    assert reads == [] and cached.evaluated == 0
    for field in ("classes", "n_rows", "holdout_sha256", "chance"):
        assert getattr(cached, field) == getattr(first, field), field

    X, y = make_data("multiclass", 600)
    write_model(tiny_scope, "another", LogisticRegression(C=0.1, max_iter=300).fit(X, y),
                model_type="logistic_regression", group="linear")
    grown = _evaluate(models_root, "tiny", store, n_jobs=1, holdout=read_rows)
    assert reads == [1] and grown.evaluated == 1


def test_a_holdout_rewritten_while_it_is_read_keys_the_cache_on_what_was_read(
        models_root, tiny_scope, store):
    """Hashed first, read later (something must be measured): if the file changed in
    between, every result is keyed on the rows actually read, never on the older hash."""
    holdout_file = tiny_scope / "holdout.csv"
    before = holdout_file.read_bytes()

    def rewrite_then_read():
        lines = before.decode().splitlines(keepends=True)
        holdout_file.write_text("".join(lines[:-20]))  # 20 rows fewer
        return load_scope(models_root, "tiny").load_holdout()

    measured = _evaluate(models_root, "tiny", store, n_jobs=1, holdout=rewrite_then_read)
    assert measured.evaluated == 4
    assert measured.holdout_sha256 == file_sha256(holdout_file) != hashlib.sha256(
        before).hexdigest()
    assert measured.n_rows == 300 - 20
    again = _evaluate(models_root, "tiny", store, n_jobs=1)
    assert again.evaluated == 0 and again.n_rows == 300 - 20


def test_parallel_and_sequential_runs_measure_the_same(models_root, tiny_scope, tmp_path):
    from promotion.store import open_store

    stores = [open_store(models_root, f"sqlite:///{tmp_path / f's{i}.db'}")
              for i in range(2)]
    runs = [_evaluate(models_root, "tiny", s, n_jobs=n) for s, n in zip(stores, (1, 2),
                                                                            strict=True)]
    for a, b in zip(*(r.models for r in runs), strict=True):
        for name in ("accuracy", "top_5_accuracy", "log_loss", "balanced_accuracy"):
            assert a.metrics[name] == b.metrics[name]
            assert a.intervals[name] == b.intervals[name]
    for s in stores:
        s.close()


def test_failing_rows_count_in_the_error_rate(models_root, store):
    """A real pipeline that raises on some rows: those rows are errors, the rest still count."""
    import json

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, y = make_data("multiclass", 600)
    X = X.abs()
    scope_dir = models_root / "tiny"
    scope_dir.mkdir()
    holdout = X.iloc[300:].assign(label=y[300:])
    holdout.iloc[:10, 0] = -1.0  # sqrt of a negative: NaN, which the classifier refuses
    holdout.to_csv(scope_dir / "holdout.csv", index=False)
    (scope_dir / "scope.json").write_text(json.dumps(
        {"task": "multiclass", "target": "label", "holdout": "holdout.csv", "n_bootstrap": 100,
         "latency_rows": 10}))
    pipeline = make_pipeline(FunctionTransformer(np.sqrt), LogisticRegression(max_iter=500))
    write_model(scope_dir, "sqrt_logreg", pipeline.fit(X.iloc[:300], y[:300]),
                model_type="logistic_regression", group="linear")
    with np.errstate(invalid="ignore"):
        evaluation = _evaluate(models_root, "tiny", store, n_jobs=1)
    model = evaluation.models[0]
    assert model.ok, model.reason
    assert model.metrics["error_rate"] == pytest.approx(10 / 300)
    assert model.intervals["error_rate"][1] > 0


def test_every_metric_has_an_interval_around_its_value(models_root, tiny_scope, store):
    evaluation = _evaluate(models_root, "tiny", store, n_jobs=1)
    for model in evaluation.models:
        assert set(model.intervals) == set(model.metrics)
        for name, value in model.metrics.items():
            low, high = model.intervals[name]
            assert low <= high, name
            if name not in ("latency_p50_ms", "latency_p95_ms", "throughput_rows_s"):
                assert low - 1e-9 <= value <= high + 1e-9, name


def test_a_cached_evaluation_reads_back_what_was_measured(models_root, tiny_scope, store):
    """The typed payload's round trip through the store: metrics, intervals, replicates and
    failure reasons come back as measured, and the stored JSON keeps the shape its
    EVALUATION_VERSION promises."""
    (tiny_scope / "tree_d3" / "model.joblib").write_bytes(b"garbage")
    fresh = _evaluate(models_root, "tiny", store, n_jobs=1)
    cached = _evaluate(models_root, "tiny", store, n_jobs=1)
    assert cached.evaluated == 0
    for measured, read in zip(fresh.models, cached.models, strict=True):
        assert (read.cached, measured.cached) == (True, False)
        for field in ("status", "reason", "sha256", "cache_key", "metrics", "intervals",
                      "replicate_names"):
            assert getattr(read, field) == getattr(measured, field), field
        if measured.ok:
            np.testing.assert_array_equal(read.replicates, measured.replicates)
    broken = next(m for m in cached.models if not m.ok)
    assert broken.model_name == "tree_d3" and "tiny/tree_d3/model.joblib" in broken.reason
    stored = store.get_evaluations([m.cache_key for m in cached.models])
    shapes = {tuple(sorted(entry.payload)) for entry in stored.values()}
    assert shapes == {("holdout", "reason", "status"),
                      ("holdout", "intervals", "metrics", "reason", "replicate_names",
                       "status", "timing")}
