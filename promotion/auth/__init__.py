"""Team mode: who is deciding, and what their role lets them do.

Without an ``[auth]`` section in the secrets file (``PROMOTION_SECRETS_FILE``) the package runs
in local mode: names are typed, not verified, and nothing is refused for a role. In team mode
every action checks the role of the person deciding (``require_role``), here in the domain,
whatever the page or command showed.
"""

from ._roles import (
    ACTIONS,
    cli_actor,
    first_admins,
    grant_role,
    may,
    require_role,
    role_of,
    team_mode,
)

__all__ = ["ACTIONS", "cli_actor", "first_admins", "grant_role", "may", "require_role",
           "role_of", "team_mode"]
