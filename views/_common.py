"""What every page shares: the store, cached evaluations, the chosen scope and user, colours.

All UI caching lives here (``st.cache_resource`` for the store and evaluations). Pages call
these helpers and ``promotion.*``; they hold no metric math, SQL or JSON building.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

import promotion

APP_DIR = Path(__file__).resolve().parent.parent

#: One colour per group, on every chart and badge.
GROUP_COLOURS: dict[str, str] = {
    "tree": "#2E7D32", "neural": "#1565C0", "variant": "#EF6C00", "linear": "#6A1B9A",
    "unknown": "#757575",
}
GROUP_LABELS: dict[str, str] = {
    "tree": "Tree (2A)", "neural": "Neural (2B)", "variant": "Variants (2C)",
    "linear": "Linear",
}
STAGE_BADGES: dict[str, str] = {
    "development": "", "candidate": "🧪 candidate", "production": "✅ promoted",
    "champion": "👑 champion", "archived": "🗄️ archived",
}


def models_dir() -> Path:
    """The models root: ``PROMOTION_MODELS_DIR`` or ``models/`` beside app.py."""
    configured = os.environ.get(promotion.MODELS_DIR_ENV)
    return Path(configured) if configured else APP_DIR / "models"


@st.cache_resource(show_spinner=False)
def get_store(root: str, url: str | None) -> promotion.SqlStore:
    """One store (connection pool) per models root and database, shared by all sessions."""
    return promotion.open_store(Path(root), url)


def store() -> promotion.SqlStore:
    return get_store(str(models_dir()), os.environ.get("PROMOTION_DB_URL"))


@st.cache_resource(show_spinner=False)
def _build_lock() -> threading.Lock:
    return threading.Lock()


#: Session-state key of this run's folder fingerprints (see ``one_fingerprint_per_run``).
_RUN_SIGNATURES = "_folder_signatures_of_this_run"


@contextmanager
def one_fingerprint_per_run() -> Iterator[None]:
    """Within one script run, fingerprint each folder once (a run asks for the chosen scope's
    up to six times, a few thousand stat calls each on a large scope). Dropped when the run
    ends, so callbacks, which run before the script, always see the files as they are now."""
    st.session_state[_RUN_SIGNATURES] = {}
    try:
        yield
    finally:
        st.session_state.pop(_RUN_SIGNATURES, None)


def folder_signature(folder: Path) -> str:
    """Cheap fingerprint (names, sizes, mtimes) of a scope folder's files, of each model
    folder's meta.json and model files, and of the holdout wherever scope.json puts it. Any
    file added, removed, replaced or rewritten changes it.

    A digest, not the listing itself: the cached functions take it as an argument, and
    Streamlit hashes arguments element by element in Python on every call (on 1,000 models,
    three quarters of a Leaderboard run went to hashing the listing)."""
    memo = st.session_state.get(_RUN_SIGNATURES)
    if memo is not None and str(folder) in memo:
        return memo[str(folder)]
    signature = _fingerprint(folder)
    if memo is not None:
        memo[str(folder)] = signature
    return signature


_FINGERPRINTED = frozenset({"meta.json", *promotion.MODEL_FILES})


def _fingerprint(folder: Path) -> str:
    signature: list[tuple[str, str, int, int]] = []
    try:
        with os.scandir(folder) as listing:
            children = sorted(listing, key=lambda entry: entry.name)
    except OSError:
        return ""
    for child in children:
        try:
            if not child.is_dir():
                stat = child.stat()
                signature.append((child.name, child.name, stat.st_size, stat.st_mtime_ns))
                continue
            with os.scandir(child.path) as inner:
                files = sorted((f for f in inner if f.name in _FINGERPRINTED),
                               key=lambda entry: entry.name)
            for file in files:
                stat = file.stat()
                signature.append((file.name, child.name, stat.st_size, stat.st_mtime_ns))
        except OSError:  # vanished or unreadable meanwhile: that is a change too
            signature.append(("", child.name, -1, -1))
    signature.append(_holdout_stat(folder))
    return hashlib.blake2b(repr(signature).encode(), digest_size=16).hexdigest()


def _holdout_stat(folder: Path) -> tuple[str, str, int, int]:
    """The holdout file's size and mtime, also when it lies outside the folder's top level
    (scope.json may name ``data/holdout.csv``): a cached evaluation, which hashes the holdout
    but may not read it, and the rows the pages read must come from the same file."""
    try:
        named = json.loads((folder / "scope.json").read_bytes()).get("holdout")
        stat = (folder / str(named)).stat()
    except (OSError, ValueError, AttributeError):  # missing or bad: loading says so
        return ("holdout", "", -1, -1)
    return ("holdout", str(named), stat.st_size, stat.st_mtime_ns)


@st.cache_resource(show_spinner=False, max_entries=64)
def _load_scope(root: str, name: str, signature: str) -> promotion.Scope:
    return promotion.load_scope(Path(root), name)


@st.cache_resource(show_spinner="Evaluating the models on the holdout (only what changed)…",
                   show_time=True, max_entries=32)
def _evaluation(root: str, scope_name: str, signature: str) -> promotion.ScopeEvaluation:
    scope = _load_scope(root, scope_name, signature)
    # The rows are read only if something must be measured (else the cache answers alone).
    return promotion.evaluate_scope(scope, store(),
                                    holdout=lambda: _holdout(root, scope_name, signature))


def evaluation(scope: promotion.Scope) -> promotion.ScopeEvaluation:
    """The scope's evaluation: from memory, else the store's cache, else measured now."""
    return _evaluation(str(scope.models_dir), scope.name, folder_signature(scope.folder))


@st.cache_resource(show_spinner=False, max_entries=16)
def _holdout(root: str, scope_name: str, signature: str) -> promotion.Holdout:
    return _load_scope(root, scope_name, signature).load_holdout()


def holdout(scope: promotion.Scope) -> promotion.Holdout:
    """The scope's validated holdout rows, read again when any scope file changes (scope.json
    decides classes and features as much as the CSV does)."""
    return _holdout(str(scope.models_dir), scope.name, folder_signature(scope.folder))


def model_evaluation(scope: promotion.Scope, model_name: str) -> promotion.ModelEvaluation:
    """The cached evaluation of one model of the scope."""
    for model in evaluation(scope).models:
        if model.model_name == model_name:
            return model
    raise promotion.ModelNotFoundError(f"scope '{scope.name}' has no model '{model_name}'")


def group_order(groups: object) -> list[str]:
    """The groups present, in the seed's phase order (tree, neural, variant, linear)."""
    present = set(groups)  # type: ignore[call-overload]
    known = [g for g in GROUP_LABELS if g in present]
    return known + sorted(present - set(known))


def group_colour_map(groups: list[str]) -> dict[str, str]:
    return {g: GROUP_COLOURS.get(g, GROUP_COLOURS["unknown"]) for g in groups}


def scopes() -> list[promotion.Scope | promotion.ScopeProblem]:
    """Every scope of the models root (read again only when its files change)."""
    root = models_dir()
    found: list[promotion.Scope | promotion.ScopeProblem] = []
    for folder in promotion.scope_folders(root):
        try:
            found.append(_load_scope(str(root), folder.name, folder_signature(folder)))
        except promotion.PromotionError as err:
            found.append(promotion.ScopeProblem(folder.name, folder, str(err)))
    return found


def ensure_demo_zoo() -> None:
    """On a models root with no scope, build the demo zoo, showing its progress."""
    # Always through the lock: while one session builds, the scope folders already exist but
    # are incomplete, and other sessions must wait rather than show them half-built.
    with _build_lock():
        if promotion.scope_folders(models_dir()):
            return
        from promotion import build_demo_zoo

        with st.status("First start: building the demo models (about a minute)…",
                       expanded=True) as status:
            build_demo_zoo(models_dir(), progress=status.write)
            for scope in promotion.discover_scopes(models_dir()):
                if isinstance(scope, promotion.Scope):
                    _evaluate_with_progress(scope)
            status.update(label="Demo models built and evaluated", state="complete",
                          expanded=False)


def _evaluate_with_progress(scope: promotion.Scope) -> None:
    """Measure a scope now (filling the store's cache), showing each model as it finishes."""
    bar = st.progress(0.0, text=f"Evaluating {scope.name}…")

    def report(done: int, total: int, name: str, cached: bool) -> None:
        bar.progress(done / max(total, 1), text=f"Evaluating {scope.name}: {done}/{total} "
                                                f"({name})")

    try:
        promotion.evaluate_scope(scope, store(), progress=report)
    except promotion.PromotionError as err:
        show_error(err)


def current_scope() -> promotion.Scope | None:
    """The scope chosen in the sidebar, loaded; errors are shown, never raised."""
    name = st.session_state.get("scope")
    if not name:
        st.info("No scope selected.")
        return None
    try:
        root = models_dir()
        return _load_scope(str(root), name, folder_signature(root / name))
    except promotion.PromotionError as err:
        show_error(err)
        return None


_MARKDOWN_SPECIALS = set("\\`*_{}[]()#+-.!|<>~$:")


def plain(text: object) -> str:
    """``text`` escaped so that Streamlit's markdown shows it exactly as written."""
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIALS else ch for ch in str(text))


def show_error(err: object) -> None:
    """An error shown exactly as written: paths and model names are not markdown."""
    st.error(plain(err))


def scope_problems() -> None:
    """Warn about scopes that cannot be read (the others keep working)."""
    for problem in scopes():
        if isinstance(problem, promotion.ScopeProblem):
            st.warning(f"Scope {plain(problem.name)} cannot be read: {plain(problem.error)}",
                       icon=":material/warning:")


def current_user() -> str:
    return str(st.session_state.get("user") or "").strip()


def default_user() -> str:
    """The signed-in user when a login is configured, else the OS account name."""
    try:
        if st.user.is_logged_in:
            return str(st.user.get("name") or st.user.get("email") or "")
    except (AttributeError, KeyError):
        pass
    try:
        return os.environ.get("PROMOTION_USER") or getpass.getuser()
    except (KeyError, OSError):  # no account name here: the analyst types one
        return ""


def leaderboard(scope: promotion.Scope) -> promotion.Leaderboard | None:
    """The ranked leaderboard of a scope with its saved weights; errors shown, not raised."""
    try:
        result = evaluation(scope)
        return promotion.rank_models(result, promotion.effective_weights(scope, store()))
    except promotion.PromotionError as err:
        show_error(err)
        return None


def _weights_key(board: promotion.Leaderboard) -> tuple:
    return tuple(sorted(board.weights.items()))


@st.cache_resource(show_spinner="Building the model cards…", max_entries=16)
def _cards(root: str, scope_name: str, signature: str, weights: tuple, method: str,
           decisions: tuple, wording: tuple
           ) -> tuple[promotion.PromotedSet, list[promotion.ModelCard], list, dict]:
    scope = _load_scope(root, scope_name, signature)
    result = evaluation(scope)
    board = promotion.rank_models(result, dict(weights))
    chosen = promotion.promoted_set(scope, store(), result, board, holdout(scope))
    reports, singles = promotion.compare_ensembles(chosen)
    return chosen, promotion.build_cards(chosen, store(), method), reports, singles


def model_cards(scope: promotion.Scope, board: promotion.Leaderboard, method: str
                ) -> tuple[promotion.PromotedSet, list[promotion.ModelCard], list, dict]:
    """The promoted set's cards and ensemble comparison, rebuilt only when an input changes:
    the files, the weights, the method, a decision (stages, deployment) or an analyst's
    wording."""
    deployed = promotion.deployment_of(store(), scope)  # the cards carry the mode
    decisions = tuple(sorted((n, r.stage, r.model_sha256)
                             for n, r in store().stages(scope.name).items())) + (
        (deployed.mode, deployed.canary_model, deployed.canary_share),)
    wording = tuple(sorted((n, f, t) for n, fields in store().annotations(scope.name).items()
                           for f, t in fields.items()))
    return _cards(str(scope.models_dir), scope.name, folder_signature(scope.folder),
                  _weights_key(board), method, decisions, wording)


@st.cache_resource(show_spinner=False, max_entries=256)
def _derived_texts(root: str, scope_name: str, signature: str, weights: tuple,
                   model_name: str) -> dict[str, str]:
    scope = _load_scope(root, scope_name, signature)
    result = evaluation(scope)
    board = promotion.rank_models(result, dict(weights))
    model = next(m for m in result.models if m.model_name == model_name)
    return promotion.derived_texts(scope, store(), model, holdout(scope), board, None)


def derived_texts(scope: promotion.Scope, board: promotion.Leaderboard, model_name: str
                  ) -> dict[str, str]:
    """Evidence-derived strength, known bias and recommended use (slice analysis, cached)."""
    return _derived_texts(str(scope.models_dir), scope.name, folder_signature(scope.folder),
                          _weights_key(board), model_name)


def scope_and_board() -> tuple[promotion.Scope, promotion.Leaderboard] | None:
    """The chosen scope and its ranked leaderboard, or None (with the reason shown)."""
    scope = current_scope()
    if scope is None:
        return None
    board = leaderboard(scope)
    return None if board is None else (scope, board)


def show_notice() -> None:
    """A message left by a callback (a decision made, or refused) for this rerun."""
    notice = st.session_state.pop("notice", None)
    if notice:
        kind, text = notice
        (st.success if kind == "ok" else st.error)(text)


def _log_signature(scope: promotion.Scope) -> tuple:
    """Size and mtime of the scope's prediction log (and its WAL): new traffic reloads it."""
    path = promotion.log_path(scope.models_dir, scope.name)
    signature = []
    for candidate in (path, path.with_name(path.name + "-wal")):
        try:
            stat = candidate.stat()
            signature.append((stat.st_size, stat.st_mtime_ns))
        except OSError:
            signature.append((-1, -1))
    return tuple(signature)


@st.cache_resource(show_spinner="Reading the prediction log…", max_entries=8)
def _live(root: str, scope_name: str, signature: tuple) -> promotion.LiveData:
    return promotion.load_live(Path(root), scope_name)


def live_data(scope: promotion.Scope) -> promotion.LiveData:
    """The scope's logged requests joined with their outcomes, read again when the log grows."""
    return _live(str(scope.models_dir), scope.name, _log_signature(scope))
