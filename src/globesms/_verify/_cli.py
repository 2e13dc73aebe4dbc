"""``globesms verify start`` and ``globesms verify check``: a thin shell over the service.

Both use the configured store (by default the SQLite file under the user's state directory), so
a check in a second invocation finds the challenge a start left there; a check sends no SMS.
``start --sandbox`` sends through the same in-process emulator as ``globesms send --sandbox`` and
prints the text the emulator received, so the code can be tried at once.

``verify check`` exits 0 only when the code is approved; 10 wrong code, 11 expired, 12 locked,
13 not found. Errors use the exit codes of ``globesms send`` (3 invalid number, 7 configuration,
8 refused or store unavailable, ...).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from typing import Any

from .._errors import SmsError
from .._validate import mask_number

CHECK_EXIT = {"approved": 0, "wrong_code": 10, "expired": 11, "locked": 12, "not_found": 13}


def add_parser(commands: Any) -> None:
    """Add ``verify start`` and ``verify check`` to the ``globesms`` sub-commands."""
    verify = commands.add_parser("verify", help="send and check verification codes")
    actions = verify.add_subparsers(dest="verify_command", required=True)
    start = actions.add_parser("start", help="send a code; print the challenge as JSON")
    start.add_argument("--to", required=True, help="recipient, international format")
    start.add_argument("--purpose", default="default", help="what the code is for")
    start.add_argument("--locale", help="template locale, e.g. fr")
    start.add_argument(
        "--sandbox", action="store_true",
        help="send to an in-process emulator and print the text it received (no account needed)",
    )
    check = actions.add_parser("check", help="check a code; exit 0 only when approved")
    check.add_argument("--to", required=True, help="recipient, international format")
    check.add_argument("--code", required=True, help="the code the user typed")
    check.add_argument("--purpose", default="default", help="what the code is for")
    for sub in (start, check):
        sub.add_argument("--config", help="TOML settings file (default: $GLOBESMS_CONFIG)")
        sub.add_argument("--log", choices=("off", "json"), default="off",
                         help="write globesms log events to stderr as JSON lines")


def run(args: argparse.Namespace) -> int:
    """Run ``verify start`` or ``verify check``; return the exit code."""
    from .._cli import _configure_logging, error_line, exit_code

    _configure_logging(args.log)
    try:
        if args.verify_command == "start":
            return _start(args)
        return _check(args)
    except SmsError as error:
        print(error_line(error), file=sys.stderr)
        return exit_code(error)


def _start(args: argparse.Namespace) -> int:
    from .._cli import _service
    from ._service import VerificationService

    args.sandbox = bool(args.sandbox)
    with _service(args) as sms, VerificationService(sms, config=args.config) as verify:
        challenge = verify.start(args.to, purpose=args.purpose, locale=args.locale)
        out: dict[str, Any] = {
            "id": challenge.id, "to": mask_number(challenge.to), "purpose": challenge.purpose,
            "expires_at": challenge.expires_at.isoformat(),
            "resend_at": challenge.resend_at.isoformat(),
            "checks_left": challenge.checks_left, "message_id": challenge.message_id,
            "sandbox": args.sandbox,
        }
        if args.sandbox:
            out["sandbox_text"] = _received_text(sms.settings.endpoint, challenge.id)
    print(json.dumps(out, ensure_ascii=False))
    return 0


def _received_text(endpoint: str | None, task_id: str) -> str | None:
    """The text the sandbox emulator received for ``task_id`` (its loopback admin path)."""
    url = f"http://{endpoint}/_emulator/messages"
    with urllib.request.urlopen(url, timeout=5) as answer:
        messages = json.load(answer)["messages"]
    return next((m.get("message") for m in messages if m.get("task_id") == task_id), None)


def _check(args: argparse.Namespace) -> int:
    from .._service import SmsService
    from .._settings import Settings
    from ._service import VerificationService

    # A check sends nothing; conversion reports are left to services (a CLI check may be a
    # sandbox code the provider never saw).
    with SmsService(Settings.load(args.config)) as sms, VerificationService(
        sms, config=args.config, report_conversions=False
    ) as verify:
        result = verify.check(args.to, args.code, purpose=args.purpose)
    print(json.dumps({"approved": result.approved, "status": result.status,
                      "checks_left": result.checks_left}))
    return CHECK_EXIT[result.status]
