"""The environment settings, in one table: name, default and help.

Every part that reads the environment (the app, the command line, the store, evaluation) asks
here, so a setting means the same everywhere; the table in docs/layout.md is generated from
``SETTINGS``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidInputError


@dataclass(frozen=True)
class Setting:
    """One environment variable the package reads."""

    name: str
    default: str | None
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("PROMOTION_MODELS_DIR", "models",
            "The models root (one folder per scope), relative to the working directory. "
            "The command line's `--models-dir` overrides it."),
    Setting("PROMOTION_DB_URL", None,
            "SQLAlchemy URL of the store, e.g. `postgresql+psycopg://user@host/db` for a "
            "store shared by several analysts or app replicas; default: the SQLite file "
            "`promotion.db` in the models root."),
    Setting("PROMOTION_DASK_SCHEDULER", None,
            "Address of a Dask scheduler (`tcp://host:8786`) to evaluate models on; default: "
            "local worker processes."),
    Setting("PROMOTION_USER", None,
            "Local mode: who is deciding when no name is given (`--user`, the app's name "
            "field); default: the operating-system account. Team mode records the signed-in "
            "email, or `cli:<account>`."),
    Setting("PROMOTION_ADMIN", None,
            "Team mode: the first admin, an email (several: comma-separated; `cli:<account>` "
            "for the command line); always admin, whatever the roles table says."),
    Setting("PROMOTION_SECRETS_FILE", ".streamlit/secrets.toml",
            "The Streamlit secrets file whose `[auth]` section turns on team mode (sign-in, "
            "roles, approvals) for the app and the command line; the default is the one "
            "`streamlit run` reads in the working directory."),
    Setting("PROMOTION_LOCK_WAIT_S", "10",
            "Seconds a write waits while another process holds the store's lock (SQLite's "
            "write lock, PostgreSQL's `lock_timeout`) before it is refused with one message "
            "naming the database; the app shows *busy, retrying* meanwhile."),
)
_BY_NAME = {setting.name: setting for setting in SETTINGS}
DB_FILE = "promotion.db"
#: The longest lock wait the setting accepts: an hour (a longer one looks like a hang).
MAX_LOCK_WAIT_S = 3600.0


def setting(name: str) -> str | None:
    """The value of setting ``name``: the environment's (blank counts as unset), else its
    default."""
    known = _BY_NAME.get(name)
    if known is None:
        raise InvalidInputError(f"unknown setting '{name}'. Hint: settings are "
                                f"{', '.join(_BY_NAME)}")
    value = os.environ.get(name, "").strip()
    return value or known.default


def lock_wait_seconds() -> float:
    """Seconds a write waits for another process's lock on the store (the setting
    ``PROMOTION_LOCK_WAIT_S``); a value that is not a sensible number is one message."""
    text = str(setting("PROMOTION_LOCK_WAIT_S"))
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_LOCK_WAIT_S):
        raise InvalidInputError(f"PROMOTION_LOCK_WAIT_S={text!r}: must be a number of seconds "
                                f"more than 0 and at most {MAX_LOCK_WAIT_S:g}")
    return seconds


def models_dir(explicit: Path | str | None = None) -> Path:
    """The models root: ``explicit`` (e.g. ``--models-dir``) if given, else the setting."""
    return Path(explicit) if explicit else Path(str(setting("PROMOTION_MODELS_DIR")))


def db_url(models_root: Path | str) -> str:
    """The store's URL: the setting, else the SQLite file in the models root."""
    return setting("PROMOTION_DB_URL") or f"sqlite:///{Path(models_root) / DB_FILE}"


def settings_table() -> str:
    """The settings as a Markdown table (the one in docs/layout.md)."""
    rows = [f"| `{s.name}` | {f'`{s.default}`' if s.default else '–'} | {s.help} |"
            for s in SETTINGS]
    return "\n".join(["| setting | default | what it does |", "|---|---|---|", *rows])
