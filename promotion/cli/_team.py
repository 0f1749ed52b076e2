"""Commands of team mode: ``requests``, ``approve``, ``reject``, ``roles``, and filing a
request when a decision needs a second person's approval."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from .._jsonio import dumps
from ..auth import grant_role, role_of, team_mode
from ..errors import ApprovalRequiredError
from ..lifecycle._approvals import describe, reject_request, request_change
from ..scopes._discovery import load_scope
from ..store._abstract import Store
from ..store._entities import Change, ChangeRequest
from ..usecases import approve_request
from ._common import user, with_store


def add_request_answers(parser: argparse.ArgumentParser) -> None:
    """The manual gates' answers that turn a decision needing approval into a request."""
    parser.add_argument("--business-impact",
                        help="when the change needs approval: file it as a request with this "
                             "business impact review")
    parser.add_argument("--risk-assessment", help="... and this risk assessment")


def or_request(args: argparse.Namespace, store: Store, change: Change,
               decide: Callable[[], int]) -> int:
    """Make the decision; when it needs a second person's approval and the command was given
    the manual gates' answers, file it as a request instead."""
    try:
        return decide()
    except ApprovalRequiredError:
        if not (args.business_impact and args.risk_assessment):
            raise
    request = request_change(store, load_scope(args.models_dir, args.scope), change,
                             actor=user(args), reason=args.reason,
                             business_impact=args.business_impact,
                             risk_assessment=args.risk_assessment)
    print(f"request #{request.id} pending: {describe(request.change)}, by "
          f"{request.requested_by}; an approver decides it: python -m promotion approve "
          f"--scope {args.scope} --id {request.id} --reason ...")
    return 0


def request_line(r: ChangeRequest, *, when: bool = True) -> str:
    """One request: what, who asked and why, the manual gates' answers, who decided it."""
    decided = (f"  {r.status} by {r.decided_by} at {r.decided_at:%Y-%m-%d %H:%M:%S}: "
               f"{r.decision_reason}" if r.decided_at else "  pending")
    at = f"  {r.requested_at:%Y-%m-%d %H:%M:%S}" if when else ""
    return (f"#{r.id}{at}  {describe(r.change)}  by "
            f"{r.requested_by}: {r.reason}  [business impact: {r.business_impact}; risk "
            f"assessment: {r.risk_assessment}]{decided}")


def cmd_requests(args: argparse.Namespace) -> int:
    def run(store: Store) -> int:
        load_scope(args.models_dir, args.scope)
        shown = [r for r in store.requests(args.scope) if args.all or r.status == "pending"]
        if args.json:
            print(dumps([vars(r) | {"change": vars(r.change)} for r in shown]))
        elif not shown:
            print(f"{args.scope}: no {'' if args.all else 'pending '}request")
        for r in [] if args.json else shown:
            print(request_line(r))
        return 0
    return with_store(args, run)


def cmd_approve(args: argparse.Namespace) -> int:
    def run(store: Store) -> int:
        done = approve_request(args.models_dir, args.scope, store, args.id, actor=user(args),
                               reason=args.reason)
        print(request_line(done))
        return 0
    return with_store(args, run)


def cmd_reject(args: argparse.Namespace) -> int:
    def run(store: Store) -> int:
        done = reject_request(store, load_scope(args.models_dir, args.scope), args.id,
                              actor=user(args), reason=args.reason)
        print(request_line(done))
        return 0
    return with_store(args, run)


def cmd_roles(args: argparse.Namespace) -> int:
    def run(store: Store) -> int:
        if args.grant or args.revoke:
            subject, role = args.grant or (args.revoke, None)
            grant_role(store, subject, role, actor=user(args))
        for grant in store.roles().values():
            print(f"{grant.subject}\t{grant.role}\tby {grant.granted_by} at "
                  f"{grant.at:%Y-%m-%d %H:%M:%S}")
        if team_mode():
            print(f"you: {user(args)}\t{role_of(store, user(args))}")
        else:
            print("local mode (no [auth] in the secrets file): roles are kept, not checked")
        return 0
    return with_store(args, run)


def grant_pair(text: str) -> tuple[str, str]:
    """``--grant SUBJECT=ROLE``."""
    subject, _, role = text.partition("=")
    if not subject.strip() or not role.strip():
        raise argparse.ArgumentTypeError(f"--grant {text!r}: write SUBJECT=ROLE, e.g. "
                                         "ana@example.com=analyst or @example.com=viewer")
    return subject.strip(), role.strip()

