"""What every page shares: the store, cached evaluations, the chosen scope and user, colours.

All UI caching lives here (``st.cache_resource`` for the store and evaluations). Pages call
these helpers and ``promotion.*``; they hold no metric math, SQL or JSON building.
"""

from __future__ import annotations

import dataclasses
import getpass
import html
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from promotion import ModelNotFoundError, PromotionError, export, settings
from promotion.auth import may, role_of, team_mode
from promotion.contract import ModelCard, cards_files
from promotion.engine import log_fingerprint
from promotion.evaluation import (
    ModelEvaluation,
    ScopeEvaluation,
    evaluate_scope,
    load_row_predictions,
)
from promotion.export import (
    TEXT_FIELDS,
    PromotedSet,
    SliceFinding,
    build_cards,
    compare_ensembles,
    promoted_set,
)
from promotion.lifecycle import deployment_of
from promotion.monitoring import LiveData, drift, load_live
from promotion.scopes import (
    Holdout,
    Scope,
    ScopeProblem,
    folder_fingerprint,
    load_scope,
    scope_folders,
)
from promotion.scoring import Leaderboard, rank_models
from promotion.store import SqlStore, on_lock_wait, open_store
from promotion.usecases import edit_card_text, effective_weights
from promotion.vocabulary import GROUPS, is_regression

if TYPE_CHECKING:  # pandas loads with the pages that draw frames
    import pandas as pd

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
    "development": "", "candidate": "🧪 candidate", "production": "✅ production",
    "champion": "👑 champion", "archived": "🗄️ archived",
}


def models_dir() -> Path:
    """The models root, resolved as the command line resolves it (see promotion.settings)."""
    return settings.models_dir()


@st.cache_resource(show_spinner=False)
def get_store(root: str, url: str | None) -> SqlStore:
    """One store (connection pool) per models root and database, shared by all sessions."""
    return open_store(Path(root), url)


def store() -> SqlStore:
    return get_store(str(models_dir()), settings.setting("PROMOTION_DB_URL"))


@contextmanager
def store_write() -> Iterator[None]:
    """Around a decision or any other store write, in a page or a callback: while the store
    waits for another process's lock, a visible "busy, retrying" line (gone when the write
    ends). A write that still cannot go through raises a PromotionError naming the database
    (StoreBusyError, StoreFaultError): catch it as the pages do and show it with ``st.error``.

        try:
            with store_write():
                promote(store(), ...)
        except PromotionError as err:
            st.session_state["notice"] = ("error", plain(err))
    """
    line = st.empty()

    def waiting(message: str) -> None:
        line.warning(plain(message), icon="⏳")

    try:
        with on_lock_wait(waiting):
            yield
    finally:
        line.empty()


def store_ready() -> bool:
    """Whether the store can be used on this run; if not, why, in an error box. The store is
    opened (a database that is busy, full or unreachable is its message) and, for SQLite,
    its file must still be the one opened: removed, replaced or truncated under the running
    app, the pages would show what it held before, so they stop here and say so."""
    try:
        store().check()
    except PromotionError as err:
        show_error(err)
        return False
    return True


@st.cache_resource(show_spinner=False)
def _build_lock() -> threading.Lock:
    return threading.Lock()


#: Session-state key of this run's folder fingerprints (see ``one_fingerprint_per_run``) and
#: of the run's answers on who may do what (``_once_per_run``).
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
    """The folder's fingerprint (``folder_fingerprint``), taken once per script run."""
    memo = st.session_state.get(_RUN_SIGNATURES)
    if memo is not None and str(folder) in memo:
        return memo[str(folder)]
    signature = folder_fingerprint(folder)
    if memo is not None:
        memo[str(folder)] = signature
    return signature


@st.cache_resource(show_spinner=False, max_entries=64)
def _load_scope(root: str, name: str, signature: str) -> Scope:
    return load_scope(Path(root), name)


@st.cache_resource(show_spinner="Evaluating the models on the holdout (only what changed)…",
                   show_time=True, max_entries=32)
def _evaluation(root: str, scope_name: str, signature: str) -> ScopeEvaluation:
    scope = _load_scope(root, scope_name, signature)
    # The rows are read only if something must be measured (else the cache answers alone).
    return evaluate_scope(scope, store(),
                                    holdout=lambda: _holdout(root, scope_name, signature))


def evaluation(scope: Scope) -> ScopeEvaluation:
    """The scope's evaluation: from memory, else the store's cache, else measured now."""
    return _evaluation(str(scope.models_dir), scope.name, folder_signature(scope.folder))


@st.cache_resource(show_spinner=False, max_entries=16)
def _holdout(root: str, scope_name: str, signature: str) -> Holdout:
    return _load_scope(root, scope_name, signature).load_holdout()


def holdout(scope: Scope) -> Holdout:
    """The scope's validated holdout rows, read again when any scope file changes (scope.json
    decides classes and features as much as the CSV does)."""
    return _holdout(str(scope.models_dir), scope.name, folder_signature(scope.folder))


def model_evaluation(scope: Scope, model_name: str) -> ModelEvaluation:
    """The cached evaluation of one model of the scope."""
    for model in evaluation(scope).models:
        if model.model_name == model_name:
            return model
    raise ModelNotFoundError(f"scope '{scope.name}' has no model '{model_name}'")


def group_order(groups: object) -> list[str]:
    """The groups present, in the seed's phase order (tree, neural, variant, linear)."""
    present = set(groups)  # type: ignore[call-overload]
    known = [g for g in GROUPS if g in present]
    return known + sorted(present - set(known))


def group_colour_map(groups: list[str]) -> dict[str, str]:
    return {g: GROUP_COLOURS.get(g, GROUP_COLOURS["unknown"]) for g in groups}


def scopes() -> list[Scope | ScopeProblem]:
    """Every scope of the models root (read again only when its files change), but the demo
    scopes still being built."""
    root = models_dir()
    found: list[Scope | ScopeProblem] = []
    building = set(demo_build().pending)
    for folder in scope_folders(root):
        if folder.name in building:
            continue
        try:
            found.append(_load_scope(str(root), folder.name, folder_signature(folder)))
        except PromotionError as err:
            found.append(ScopeProblem(folder.name, folder, str(err)))
    return found


@dataclass
class DemoBuild:
    """The first start's demo build, shared by every session of this server: the first scope
    is built and ranked before any page, the others behind it (``pending``) in a thread."""

    first: str | None = None
    pending: list[str] = dataclasses.field(default_factory=list)
    step: str = ""
    fraction: float = 0.0
    started: float = 0.0
    error: str | None = None

    def progress_text(self) -> str:
        """Step, count and time left, for the progress bar."""
        elapsed = time.monotonic() - self.started
        left = (f"about {elapsed / self.fraction * (1 - self.fraction):.0f} s left"
                if self.fraction > 0.02 else "estimating the time left")
        return f"{self.step} · {self.fraction:.0%} · {left}"


@st.cache_resource(show_spinner=False)
def demo_build() -> DemoBuild:
    """The first start's build state (empty when the models root had scopes already)."""
    return DemoBuild()


def ensure_demo_zoo() -> None:
    """On a models root with no scope, build the demo zoo: its first scope now, with a
    progress bar, so the first page is ranked in seconds; the others behind it."""
    # Always through the lock: while one session builds the first scope, its folder exists but
    # is incomplete, and other sessions must wait rather than show it half-built.
    with _build_lock():
        if scope_folders(models_dir()):
            return
        from demo import DEMO_SCOPES

        state = demo_build()
        state.first, state.pending = DEMO_SCOPES[0], list(DEMO_SCOPES[1:])
        state.started = time.monotonic()
        with st.status(f"First start: building the demo scope {state.first} (the others "
                       "follow in the background)…", expanded=True) as status:
            bar = st.progress(0.0, text="Training the models…")
            root, shared = models_dir(), store()
            _build_one(root, shared, state.first,
                       lambda done, text: bar.progress(done, text=text))
            status.update(label=f"Demo scope {state.first} built and ranked", state="complete",
                          expanded=False)
        threading.Thread(target=_build_the_rest, args=(root, shared, state), daemon=True,
                         name=DEMO_BUILD_THREAD).start()


#: The name of the thread that builds the demo scopes behind the first page.
DEMO_BUILD_THREAD = "demo-build"


def _build_one(root: Path, shared: SqlStore, name: str,
               report: Callable[[float, str], None]) -> None:
    """Build one demo scope (60% of its bar) and evaluate it (40%), reporting as it goes."""
    from demo import MODELS_PER_SCOPE, build_demo_zoo

    folder = root / name

    def built(_: str) -> None:
        done = sum((d / "meta.json").is_file() for d in folder.iterdir() if d.is_dir()) \
            if folder.is_dir() else 0
        report(0.6 * done / MODELS_PER_SCOPE, f"{name}: trained {done}/{MODELS_PER_SCOPE} "
                                              "models")

    build_demo_zoo(root, scopes=(name,), progress=built)

    def measured(done: int, total: int, model: str, cached: bool) -> None:
        report(0.6 + 0.4 * done / max(total, 1), f"{name}: evaluated {done}/{total} models")

    evaluate_scope(load_scope(root, name), shared, progress=measured)


def _build_the_rest(root: Path, shared: SqlStore, state: DemoBuild) -> None:
    """The thread behind the first page: every pending scope, one after the other. A scope
    that fails is named in the sidebar and the next one is built all the same."""
    total = len(state.pending)
    state.started = time.monotonic()
    failed: list[str] = []
    for index, name in enumerate(list(state.pending)):
        def report(done: float, text: str, index: int = index) -> None:
            state.fraction = (index + done) / total
            state.step = f"scope {index + 1} of {total}, {text}"
        try:
            _build_one(root, shared, name, report)
        except Exception as err:  # shown in the sidebar; the built scopes keep working
            failed.append(f"{name}: {err}")
            state.error = f"building demo scope(s) failed: {'; '.join(failed)}"
        state.pending.remove(name)


def current_scope() -> Scope | None:
    """The scope chosen in the sidebar, loaded; errors are shown, never raised."""
    name = st.session_state.get("scope")
    if not name:
        st.info("No scope selected.")
        return None
    try:
        root = models_dir()
        return _load_scope(str(root), name, folder_signature(root / name))
    except PromotionError as err:
        show_error(err)
        return None


#: Every character Markdown, HTML entities (``&``), setext headings (``=``), KaTeX (``$``) or
#: Streamlit's directives (``:red[...]``, ``:material/...:``) give a meaning to.
_MARKDOWN_SPECIALS = set("\\`*_{}[]()#+-.!|<>~$:&=")
#: GFM turns bare URLs, ``www.`` domains and e-mail addresses into links even when every
#: character is escaped (it links the text after the escapes are read). An invisible word
#: joiner in front of them (after the ``@``) is not a boundary GFM links at, so they stay text.
_AUTOLINKED = re.compile(r"(?i)(?=https?:|www\.|mailto:|xmpp:)|(?<=@)")
WORD_JOINER = "\u2060"


def plain(text: object) -> str:
    """``text`` escaped so that Streamlit's Markdown (bodies, labels, options) shows it exactly
    as written: no image, link, KaTeX, HTML, colour or emphasis from data."""
    joined = _AUTOLINKED.sub(WORD_JOINER, str(text))
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIALS else ch for ch in joined)


def percents_to_100(shares: list[float], digits: int = 1) -> list[str]:
    """Shares that sum to 1 as percentages that add up to exactly 100% when read (largest
    remainders get the last unit), e.g. three thirds as 33.4%, 33.3%, 33.3%."""
    unit = 10 ** digits * 100
    raw = [share * unit for share in shares]
    whole = [int(value) for value in raw]
    short = round(sum(raw)) - sum(whole)
    for i in sorted(range(len(raw)), key=lambda i: whole[i] - raw[i])[:max(short, 0)]:
        whole[i] += 1
    return [f"{value / 10 ** digits:.{digits}f}%" for value in whole]


def chart_text(text: object) -> str:
    """``text`` for a Plotly chart (legend, hover, axis labels, annotations): Plotly reads a
    few HTML tags (``<b>``, ``<a href>``, ``<br>``) and entities there, so they are escaped."""
    return html.escape(str(text), quote=False)


def page_title(title: str, scope: Scope) -> None:
    """A page's title naming the scope, and the scope's description (``scope.json``) under
    it, both shown as written."""
    st.title(f"{title} · {plain(scope.name)}")
    if scope.config.description.strip():
        st.caption(plain(scope.config.description))


def show_error(err: object) -> None:
    """An error shown exactly as written: paths and model names are not markdown."""
    st.error(plain(err))


def scope_problems() -> None:
    """Warn about scopes that cannot be read (the others keep working)."""
    for problem in scopes():
        if isinstance(problem, ScopeProblem):
            st.warning(f"Scope {plain(problem.name)} cannot be read: {plain(problem.error)}",
                       icon=":material/warning:")


def current_user() -> str:
    """Who decides: the signed-in email in team mode, else the name typed in the sidebar."""
    if team():
        return signed_in_email()
    return str(st.session_state.get("user") or "").strip()


# identity in team mode (sign-in through OpenID Connect, roles) ---------------------------------

def _once_per_run(key: str, compute: Callable[[], bool]) -> bool:
    """``compute()``, taken once per script run (a page asks for each answer once a row);
    callbacks, which run before the script, always compute afresh."""
    memo = st.session_state.get(_RUN_SIGNATURES)
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def team() -> bool:
    """Team mode: the secrets file has an ``[auth]`` section (see ``promotion.auth``)."""
    return _once_per_run("team mode", team_mode)


def signed_in_email() -> str:
    """The signed-in person's email ("" when nobody is signed in)."""
    if not st.user.is_logged_in:
        return ""
    return str(st.user.get("email") or "").strip().lower()


def may_do(action: str) -> bool:
    """Whether the person deciding may do ``action`` (a key of ``promotion.auth.ACTIONS``);
    the domain checks again, this only keeps buttons they may not use disabled."""
    who = current_user()
    return bool(who) and _once_per_run(f"may {action}: {who}",
                                       lambda: may(store(), who, action))


def sign_in_page() -> None:
    """Team mode, nobody signed in: only the way to sign in."""
    st.title("Model promotion")
    if st.user.is_logged_in:  # signed in, but the provider gave no email to record
        st.error("Your identity provider gave no email address, and every decision records "
                 "one. Hint: ask for the `email` claim (scope `openid email`).")
        st.button("Sign out", on_click=st.logout)
        return
    st.info("Sign in to see the leaderboards and to decide: every decision is recorded with "
            "the identity you sign in with.")
    st.button("Sign in", type="primary", on_click=st.login)


def identity_sidebar() -> None:
    """Team mode: who is signed in, with their role, and a way out."""
    who = current_user()
    st.caption(f"Signed in as **{plain(who)}** · {role_of(store(), who)}")
    st.button("Sign out", key="sign_out", on_click=st.logout)


def default_user() -> str:
    """Local mode's first guess at the analyst's name: the setting, else the OS account."""
    try:
        return settings.setting("PROMOTION_USER") or getpass.getuser()
    except (KeyError, OSError):  # no account name here: the analyst types one
        return ""


def leaderboard(scope: Scope) -> Leaderboard | None:
    """The ranked leaderboard of a scope with its saved weights; errors shown, not raised."""
    try:
        result = evaluation(scope)
        return rank_models(result, effective_weights(scope, store()))
    except PromotionError as err:
        show_error(err)
        return None


def _weights_key(board: Leaderboard) -> tuple:
    return tuple(sorted(board.weights.items()))


@st.cache_resource(show_spinner="Building the model cards…", max_entries=16)
def _cards(root: str, scope_name: str, signature: str, weights: tuple, method: str,
           decisions: tuple, wording: tuple
           ) -> tuple[PromotedSet, list[ModelCard], list, dict]:
    scope = _load_scope(root, scope_name, signature)
    result = evaluation(scope)
    board = rank_models(result, dict(weights))
    chosen = promoted_set(scope, store(), result, board, holdout(scope))
    reports, singles = compare_ensembles(chosen)
    return chosen, build_cards(chosen, store(), method), reports, singles


def model_cards(scope: Scope, board: Leaderboard, method: str
                ) -> tuple[PromotedSet, list[ModelCard], list, dict]:
    """The promoted set's cards and ensemble comparison, rebuilt only when an input changes:
    the files, the weights, the method, a decision (stages, deployment) or an analyst's
    wording."""
    deployed = deployment_of(store(), scope)  # the cards carry the mode
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
    board = rank_models(result, dict(weights))
    return export.derived_texts(scope, store(), result, model_name, holdout(scope), board, None)


def derived_texts(scope: Scope, board: Leaderboard, model_name: str
                  ) -> dict[str, str]:
    """Evidence-derived strength, known bias and recommended use (slice analysis, cached)."""
    return _derived_texts(str(scope.models_dir), scope.name, folder_signature(scope.folder),
                          _weights_key(board), model_name)


@st.cache_resource(show_spinner="Testing the model's slices…", max_entries=256)
def _slice_findings(root: str, scope_name: str, signature: str,
                    model_name: str) -> list[SliceFinding]:
    scope = _load_scope(root, scope_name, signature)
    rows = load_row_predictions(store(), model_evaluation(scope, model_name))
    if rows is None:
        return []
    # A regression scope's slices of predicted values are named after its target.
    named = {"target": scope.config.target} if is_regression(scope.task) else {}
    return export.slice_findings(rows, holdout(scope), scope.task, **named)


def slice_findings(scope: Scope, model_name: str) -> list[SliceFinding]:
    """The slices of the holdout where the model is significantly better or worse than its
    own average (``promotion.export.slice_findings``), strongest first; cached."""
    return _slice_findings(str(scope.models_dir), scope.name, folder_signature(scope.folder),
                           model_name)


def scope_and_board() -> tuple[Scope, Leaderboard] | None:
    """The chosen scope and its ranked leaderboard, or None (with the reason shown)."""
    scope = current_scope()
    if scope is None:
        return None
    board = leaderboard(scope)
    return None if board is None else (scope, board)


def serving_now(scope: Scope) -> str:
    """What the engine serves after a decision: the decisions, or how the export lags."""
    from promotion.monitoring import deployment_summary
    from promotion.usecases import stale_export

    stale = stale_export(scope.models_dir, scope.name, store())
    return (f"The served export lags behind: {stale}" if stale else
            "Serving: " + deployment_summary(store(), scope))


def show_notice() -> None:
    """A message left by a callback (a decision made, or refused) for this rerun."""
    notice = st.session_state.pop("notice", None)
    if notice:
        kind, text = notice
        (st.success if kind == "ok" else st.error)(text)


@st.cache_resource(show_spinner="Reading the prediction log…", max_entries=8)
def _live(root: str, scope_name: str, signature: tuple) -> LiveData:
    return load_live(Path(root), scope_name)


def live_data(scope: Scope) -> LiveData:
    """The scope's logged requests joined with their outcomes, read again when the log grows."""
    return _live(str(scope.models_dir), scope.name, log_fingerprint(scope.models_dir, scope.name))


@st.cache_data(show_spinner="Measuring drift on the logged inputs…", max_entries=8)
def _drift(root: str, scope_name: str, signature: tuple, newest: str | None,
           _live: LiveData) -> pd.DataFrame:
    return drift(Path(root), scope_name, _live)


def live_drift(scope: Scope, live: LiveData) -> pd.DataFrame:
    """PSI per feature of ``live`` (see ``promotion.monitoring.drift``): the inputs are read
    from the log again, so the table is kept until the log or the newest export changes."""
    files = cards_files(scope.models_dir, scope.name)
    return _drift(str(scope.models_dir), scope.name,
                  log_fingerprint(scope.models_dir, scope.name),
                  files[-1].name if files else None, live)


def save_card_text(scope_name: str, model_name: str, field: str, widget: str) -> None:
    """Callback of every card-text box: the analyst's wording is kept in the store and wins
    over the derived text (blank: back to the derived text)."""
    try:
        with store_write():
            edit_card_text(store(), scope_name, model_name, field,
                           str(st.session_state[widget]), actor=current_user() or "unknown")
    except PromotionError as err:
        st.session_state["notice"] = ("error", plain(err))
        return
    st.session_state["notice"] = ("ok", f"Saved {TEXT_FIELDS[field].lower()} of "
                                        f"{plain(model_name)}.")


def card_text_editor(scope_name: str, model_name: str, texts: Mapping[str, str], *,
                     saved: Mapping[str, str] | None = None, side_by_side: bool = False,
                     height: int = 80) -> None:
    """One box per card text (strength, known bias, recommended use), showing ``texts``; an
    edit is saved at once by ``save_card_text``. With ``saved`` (the analyst's own wording),
    each box says whether it shows that wording or the evidence's."""
    places = st.columns(len(TEXT_FIELDS)) if side_by_side else [st.container()] * len(TEXT_FIELDS)
    for place, (field, label) in zip(places, TEXT_FIELDS.items(), strict=True):
        widget = f"card_text:{scope_name}:{model_name}:{field}"
        st.session_state[widget] = texts[field]
        place.text_area(label, key=widget, height=height, on_change=save_card_text,
                        args=(scope_name, model_name, field, widget),
                        disabled=not may_do("notes"))
        if saved is not None:
            place.caption("The analyst's wording (clear it to see the evidence again)"
                          if saved.get(field) else
                          "Derived from the holdout evidence; edit to overwrite")
