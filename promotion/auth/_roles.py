"""Team mode, roles and the one check every action makes (``require_role``)."""

from __future__ import annotations

import getpass
import os
import re
import tomllib
from pathlib import Path

from ..errors import InvalidInputError, PermissionDeniedError
from ..settings import setting
from ..store._abstract import Store
from ..store._entities import RoleGrant
from ..vocabulary import ROLES, Role

#: What each action needs, and how a refusal names it. A role includes the ones before it
#: in ``ROLES`` (an approver may do what an analyst may).
ACTIONS: dict[str, tuple[Role, str]] = {
    "read": ("viewer", "reading"),
    "move": ("analyst", "moving models"),
    "request": ("analyst", "requesting a change"),
    "weights": ("analyst", "changing the composite weights"),
    "notes": ("analyst", "editing a card's texts"),
    "approve": ("approver", "approving or rejecting a request"),
    "deploy": ("admin", "changing the deployment"),
    "roles": ("admin", "changing roles"),
}
#: Who may be given a role: an email, every email of a domain, or a command-line account.
_SUBJECT = re.compile(r"^(?:[^@\s]+@[^@\s]+\.[^@\s]+|@[^@\s]+\.[^@\s]+|cli:\S+)$")


def team_mode() -> bool:
    """Whether the secrets file (``PROMOTION_SECRETS_FILE``) has an ``[auth]`` section."""
    path = Path(str(setting("PROMOTION_SECRETS_FILE")))
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    except OSError as err:
        raise InvalidInputError(f"{path}: cannot be read ({err.strerror}) "
                                "(PROMOTION_SECRETS_FILE)") from None
    try:
        return isinstance(tomllib.loads(text).get("auth"), dict)
    except tomllib.TOMLDecodeError as err:
        raise InvalidInputError(f"{path}: is not valid TOML ({err})") from None


def cli_actor() -> str:
    """Who decides from the command line in team mode: ``cli:<operating-system account>``,
    the account the process runs as (not ``$USER``, which anyone may set)."""
    try:
        import pwd

        return f"cli:{pwd.getpwuid(os.getuid()).pw_name}"
    except ImportError:  # no pwd on Windows: the logged-in account
        pass
    except KeyError:
        raise InvalidInputError("team mode: the command line records decisions as "
                                "cli:<account>, and this process has no account name") from None
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        raise InvalidInputError("team mode: the command line records decisions as "
                                "cli:<account>, and this process has no account name") from None


def first_admins() -> frozenset[str]:
    """The admins named by ``PROMOTION_ADMIN`` (always admin)."""
    names = str(setting("PROMOTION_ADMIN") or "")
    return frozenset(n.strip().lower() for n in names.split(",") if n.strip())


def role_of(store: Store, who: str) -> Role:
    """The role of ``who`` (an email or ``cli:<account>``): a first admin's, else the one given
    to that exact name, else to its email domain, else viewer."""
    name = who.strip().lower()
    if name in first_admins():
        return "admin"
    grants = store.roles()
    domain = "@" + name.rsplit("@", 1)[1] if "@" in name else None
    grant = grants.get(name) or (grants.get(domain) if domain else None)
    return grant.role if grant is not None and grant.role in ROLES else "viewer"  # type: ignore[return-value]


def may(store: Store, who: str, action: str) -> bool:
    """Whether ``who`` may do ``action`` (see ``ACTIONS``); anyone may in local mode."""
    needed, _ = ACTIONS[action]
    return not team_mode() or ROLES.index(role_of(store, who)) >= ROLES.index(needed)


def require_role(store: Store, who: str, action: str) -> None:
    """Refuse ``action`` (a key of ``ACTIONS``) when, in team mode, ``who``'s role does not
    allow it."""
    if may(store, who, action):
        return
    needed, doing = ACTIONS[action]
    raise PermissionDeniedError(
        f"{who or 'nobody'} is {_article(role_of(store, who))}: {doing} needs the {needed} "
        "role. Hint: ask an admin to change your role (Roles page, or python -m promotion "
        "roles)")


def grant_role(store: Store, subject: str, role: Role | None, *, actor: str
               ) -> RoleGrant | None:
    """Give ``subject`` (``ana@example.com``, ``@example.com`` or ``cli:ana``) a role, or take
    it away (None); only an admin may."""
    require_role(store, actor, "roles")
    subject = subject.strip().lower()
    if not _SUBJECT.match(subject):
        raise InvalidInputError(f"'{subject}' is not an email, @domain or cli:account "
                                "(field 'subject'). Hint: ana@example.com, @example.com or "
                                "cli:ana")
    return store.set_role(subject, role, actor=actor)


def _article(role: str) -> str:
    return f"an {role}" if role[0] in "aeiou" else f"a {role}"
