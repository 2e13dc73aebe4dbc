"""The ``globesms`` command: a thin shell over :class:`SmsService`.

Exit codes (one per error category, stable):

== =====================================================
0  sent
1  unknown provider error (SmsError)
2  bad command line
3  invalid request or recipient (InvalidRequest)
4  message rejected (MessageRejected)
5  account problem (AccountError)
6  authentication or permission (AuthError)
7  configuration or credentials (ConfigurationError)
8  temporary failure, nothing sent (TransientError)
9  outcome unknown, may have been sent (DeliveryUncertain)
== =====================================================
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import secrets
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from ._errors import (
    AccountError,
    AuthError,
    ConfigurationError,
    DeliveryUncertain,
    InvalidRequest,
    MessageRejected,
    SmsError,
    TransientError,
)
from ._validate import MESSAGE_TYPES, mask_number
from ._verify import _cli as _verify_cli

if TYPE_CHECKING:  # the SDK is imported only when a command needs it (not for --version)
    from ._results import SendReceipt
    from ._service import SmsService

CONFIG_HELP = (
    "TOML settings file. Settings come from, lowest first: the defaults; this file, else "
    "$GLOBESMS_CONFIG, else config/globesms.toml in the working directory when it exists; "
    "then GLOBESMS_* variables. Keys come from the Alibaba Cloud credential chain "
    "(ALIBABA_CLOUD_* variables, profiles, RAM role), never from settings"
)
SANDBOX_HELP = (
    "send to an in-process emulator with throwaway keys (no Alibaba account needed); the "
    "config file and GLOBESMS_* variables apply (sender, type, timeouts, attempts...), except "
    "endpoint, protocol and ca_file, which point at the emulator"
)

EXIT_CODES: tuple[tuple[type[SmsError], int], ...] = (
    (InvalidRequest, 3),
    (MessageRejected, 4),
    (AccountError, 5),
    (AuthError, 6),
    (ConfigurationError, 7),
    (TransientError, 8),
    (DeliveryUncertain, 9),
    (SmsError, 1),
)


def exit_code(error: SmsError) -> int:
    """The documented exit code for an error's category."""
    return next(code for klass, code in EXIT_CODES if isinstance(error, klass))


def error_line(error: SmsError) -> str:
    """The one line an expected error prints: class, code, request id, retry delay, hint."""
    code = f" [{error.code}]" if error.code else ""
    known = []
    if error.request_id:
        known.append(f"request {error.request_id}")
    if error.retry_after is not None:
        known.append(f"retry after {error.retry_after:.1f} s")
    details = f" ({', '.join(known)})" if known else ""
    hint = " ".join(str(error.hint).split())
    return f"error: {type(error).__name__}{code}{details}: {hint}"


class _VersionAction(argparse.Action):
    """``--version``, reading the package metadata only when asked (not on every run)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0,
                         help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        from . import __version__

        print(f"globesms {__version__}")
        parser.exit()


def _common_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    command.add_argument("--sandbox", action="store_true", help=SANDBOX_HELP)
    command.add_argument(
        "--log", choices=("off", "json"), default="off",
        help="write globesms log events to stderr as JSON lines",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="globesms", description="Send SMS through Alibaba Cloud SendMessageToGlobe."
    )
    parser.add_argument("--version", action=_VersionAction)
    commands = parser.add_subparsers(dest="command")
    send = commands.add_parser("send", help="send one SMS and print the receipt as JSON")
    send.add_argument("--to", required=True, help="recipient, international format")
    send.add_argument("--message", required=True, help="message text")
    send.add_argument("--sender", help="sender ID (default: settings)")
    send.add_argument("--type", dest="message_type", choices=MESSAGE_TYPES, help="message type")
    send.add_argument("--task-id", help="task id echoed in delivery receipts")
    send.add_argument("--validity-period", type=int, help="seconds the message stays valid")
    _common_options(send)
    status = commands.add_parser("status", help="print where a sent message stands, as JSON")
    status.add_argument("message_id", metavar="MESSAGE_ID", help="the id a send returned")
    _common_options(status)
    batch = commands.add_parser(
        "batch", help="send one text (or one per number) to many numbers; JSON result")
    batch.add_argument("--to", action="append", default=[], help="recipient, repeatable")
    batch.add_argument("--message", help="the text for every number")
    batch.add_argument("--file", metavar="FILE",
                       help="one number per line, or CSV lines of number,text; '-' reads stdin")
    batch.add_argument("--type", dest="message_type", choices=("NOTIFY", "MKT"),
                       default="NOTIFY", help="message type (default: NOTIFY)")
    batch.add_argument("--sender", help="sender ID (default: settings)")
    batch.add_argument("--task-id", help="task id echoed in delivery receipts")
    _common_options(batch)
    preview = commands.add_parser(
        "preview", help="count encoding and segments of a text locally; sends nothing")
    preview.add_argument("--to", required=True, help="recipient, international format")
    preview.add_argument("--message", required=True, help="message text")
    preview.add_argument("--sender", help="sender ID (default: settings)")
    preview.add_argument("--type", dest="message_type", choices=MESSAGE_TYPES,
                         help="message type")
    preview.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    _verify_cli.add_parser(commands)
    doctor = commands.add_parser(
        "doctor", help="check settings, credentials, network, clock and stores; sends no SMS"
    )
    doctor.add_argument("--config", help="TOML settings file (default: $GLOBESMS_CONFIG)")
    doctor.add_argument("--sandbox", action="store_true",
                        help="check against an in-process emulator with throwaway keys")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.add_argument("--timeout", type=float, default=2.5, metavar="SECONDS",
                        help="bound on each network step (default: 2.5)")
    emu = commands.add_parser("emulator", help="run the loopback emulator until interrupted")
    emu.add_argument("--port", type=int, default=0, help="port to listen on (default: any)")
    emu.add_argument("--host", default="127.0.0.1",
                     help="address to bind (default: 127.0.0.1); another address needs a token")
    emu.add_argument("--tls", action="store_true", help="serve HTTPS with a throwaway CA")
    emu.add_argument("--key", action="append", default=[], metavar="ID:SECRET",
                     help="accepted AccessKey pair, repeatable (default: a generated one)")
    emu.add_argument("--delay", type=float, default=0.0, metavar="SECONDS",
                     help="hold every answer back this long (a provider's latency)")
    emu.add_argument("--env", action="store_true",
                     help="print export lines (GLOBESMS_ENDPOINT, ALIBABA_CLOUD_ACCESS_KEY_ID...)"
                     " that point a service at the emulator")
    emu.add_argument("--admin-token", metavar="TOKEN",
                     help="token for the inbox and control API off loopback"
                     " (default: $GLOBESMS_EMULATOR_TOKEN, else generated and printed)")
    emu.add_argument("--no-auth", action="store_true",
                     help="serve the inbox and control API without a token, even off loopback")
    emu.add_argument("--max-records", type=int, default=1000, metavar="N",
                     help="messages and requests kept; the oldest are dropped (default: 1000)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if args.command == "verify":
        return _verify_cli.run(args)
    if args.command == "emulator":
        from .emulator import serve

        return serve(
            port=args.port, tls=args.tls, keys=args.key, answer_delay=args.delay,
            host=args.host, env=args.env, admin_token=args.admin_token, no_auth=args.no_auth,
            max_records=args.max_records,
        )
    if args.command == "doctor":
        from ._doctor import command

        return command(config=args.config, sandbox=args.sandbox, json_output=args.json,
                       timeout=args.timeout)
    if args.command == "preview":
        args.sandbox, args.log = False, "off"
    _configure_logging(args.log)
    try:
        output, code = _COMMANDS[args.command](args)
    except SmsError as error:
        print(error_line(error), file=sys.stderr)
        return exit_code(error)
    print(json.dumps(output, ensure_ascii=False, default=str))
    return code


def _send(args: argparse.Namespace) -> tuple[dict[str, object], int]:
    with _service(args) as service:
        receipt = service.send(
            args.to, args.message, sender=args.sender, message_type=args.message_type,
            task_id=args.task_id, validity_period=args.validity_period,
        )
    return _receipt_json(receipt, sandbox=args.sandbox), 0


def _status(args: argparse.Namespace) -> tuple[dict[str, object], int]:
    with _service(args) as service:
        status = service.status(args.message_id)
    data = asdict(status)
    data["to"] = mask_number(status.to) if status.to else None
    return data, 0


def _preview(args: argparse.Namespace) -> tuple[dict[str, object], int]:
    # No network and no credential lookup: a throwaway key signs nothing.
    from ._credentials import static_credential
    from ._service import SmsService
    from ._settings import Settings

    service = SmsService(Settings.load(args.config), credential=static_credential("-", "-"))
    preview = service.preview(args.to, args.message, sender=args.sender,
                              message_type=args.message_type)
    data = asdict(preview)
    data["to"] = mask_number(preview.to)
    return data, 0


def _batch(args: argparse.Namespace) -> tuple[dict[str, object], int]:
    numbers, texts = _batch_input(args)
    progress = sys.stderr.isatty()
    merged: dict[str, list[object]] = {"accepted": [], "rejected": [], "uncertain": [],
                                       "request_ids": []}
    worst: SmsError | None = None
    with _service(args) as service:
        step = 1000
        for start in range(0, len(numbers), step):
            part = slice(start, start + step)
            result = service.send_batch(
                numbers[part], texts[part] if isinstance(texts, list) else texts,
                message_type=args.message_type, sender=args.sender, task_id=args.task_id,
            )
            merged["accepted"] += [{"to": mask_number(a.to), "message_id": a.message_id}
                                   for a in result.accepted]
            merged["rejected"] += [{"to": mask_number(r.to), "error": error_line(r.error)}
                                   for r in result.rejected]
            merged["uncertain"] += [mask_number(number) for number in result.uncertain]
            merged["request_ids"] += result.request_ids
            worst = worst or next((r.error for r in result.rejected), None)
            if progress:
                done = min(start + step, len(numbers))
                print(f"batch: {done}/{len(numbers)} numbers handled", file=sys.stderr)
    data: dict[str, object] = {**merged, "sandbox": args.sandbox}
    if merged["uncertain"]:
        return data, exit_code(DeliveryUncertain())
    return data, exit_code(worst) if worst is not None else 0


def _batch_input(args: argparse.Namespace) -> tuple[list[str], str | list[str]]:
    """Numbers and texts from --to/--message or --file (numbers, or CSV number,text lines)."""
    import csv
    import io

    numbers: list[str] = list(args.to)
    texts: list[str] = []
    if args.file:
        try:
            if args.file == "-":
                content = sys.stdin.read()
            else:
                with open(args.file, encoding="utf-8") as handle:
                    content = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidRequest(f"--file cannot be read ({type(exc).__name__}); give a UTF-8 "
                                 "text file", code="InvalidFile") from None
        for row in csv.reader(io.StringIO(content)):
            if not row or not row[0].strip():
                continue
            numbers.append(row[0].strip())
            texts.append(",".join(row[1:]).strip() if len(row) > 1 else "")
    if not numbers:
        raise InvalidRequest("give the numbers with --to (repeatable) or --file",
                             code="InvalidTo")
    if args.message is not None:
        return numbers, args.message
    if len(texts) != len(numbers) or not all(texts):
        raise InvalidRequest("give --message, or a --file of CSV lines number,text for every "
                             "number", code="InvalidMessage")
    return numbers, texts


_COMMANDS: dict[str, Callable[[argparse.Namespace], tuple[dict[str, object], int]]] = {
    "send": _send, "status": _status, "batch": _batch, "preview": _preview,
}


@contextlib.contextmanager
def _service(args: argparse.Namespace) -> Iterator[SmsService]:
    from ._credentials import static_credential
    from ._service import SmsService
    from ._settings import Settings

    if not args.sandbox:
        with SmsService(Settings.load(args.config)) as service:
            yield service
        return
    from .emulator import Emulator

    key_id, secret = "sandbox-" + secrets.token_hex(4), secrets.token_urlsafe(24)
    with Emulator(access_keys={key_id: secret}) as emulator:
        # The same file and GLOBESMS_* variables as a real send; only where requests go (and
        # how they are protected) is the sandbox's own.
        settings = Settings.load(
            args.config, endpoint=emulator.endpoint, protocol="http", ca_file=None
        )
        with SmsService(settings, credential=static_credential(key_id, secret)) as service:
            yield service


def _receipt_json(receipt: SendReceipt, *, sandbox: bool) -> dict[str, object]:
    data = asdict(receipt)
    data["to"] = mask_number(receipt.to)
    data["sandbox"] = sandbox
    return data


def _configure_logging(mode: str) -> None:
    """As the application, decide where globesms events go: nowhere, or JSON lines on stderr."""
    from ._log import JsonFormatter

    log = logging.getLogger("globesms")
    for old in [h for h in log.handlers if getattr(h, "_globesms_cli", False)]:
        log.removeHandler(old)
    if mode == "json":
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        log.setLevel(logging.INFO)
    else:
        handler = logging.NullHandler()  # keeps logging's last-resort printer quiet
    handler._globesms_cli = True  # type: ignore[attr-defined]
    log.addHandler(handler)

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
