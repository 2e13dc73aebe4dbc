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
from collections.abc import Iterator, Sequence
from dataclasses import asdict

from . import __version__
from ._credentials import static_credential
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
from ._log import JsonFormatter
from ._results import SendReceipt
from ._service import SmsService
from ._settings import Settings
from ._validate import MESSAGE_TYPES, mask_number

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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="globesms", description="Send SMS through Alibaba Cloud SendMessageToGlobe."
    )
    parser.add_argument("--version", action="version", version=f"globesms {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    send = commands.add_parser("send", help="send one SMS and print the receipt as JSON")
    send.add_argument("--to", required=True, help="recipient, international format")
    send.add_argument("--message", required=True, help="message text")
    send.add_argument("--sender", help="sender ID (default: settings)")
    send.add_argument("--type", dest="message_type", choices=MESSAGE_TYPES, help="message type")
    send.add_argument("--task-id", help="task id echoed in delivery receipts")
    send.add_argument("--validity-period", type=int, help="seconds the message stays valid")
    send.add_argument("--config", help="TOML settings file (default: $GLOBESMS_CONFIG)")
    send.add_argument(
        "--sandbox", action="store_true",
        help="send to an in-process emulator with throwaway keys (no Alibaba account needed)",
    )
    send.add_argument(
        "--log", choices=("off", "json"), default="off",
        help="write globesms log events to stderr as JSON lines",
    )
    emu = commands.add_parser("emulator", help="run the loopback emulator until interrupted")
    emu.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any)")
    emu.add_argument("--tls", action="store_true", help="serve HTTPS with a throwaway CA")
    emu.add_argument("--key", action="append", default=[], metavar="ID:SECRET",
                     help="accepted AccessKey pair, repeatable (default: a generated one)")
    emu.add_argument("--delay", type=float, default=0.0, metavar="SECONDS",
                     help="hold every answer back this long (a provider's latency)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "emulator":
        from .emulator import serve

        return serve(port=args.port, tls=args.tls, keys=args.key, answer_delay=args.delay)
    _configure_logging(args.log)
    try:
        with _service(args) as service:
            receipt = service.send(
                args.to,
                args.message,
                sender=args.sender,
                message_type=args.message_type,
                task_id=args.task_id,
                validity_period=args.validity_period,
            )
    except SmsError as error:
        code = f" [{error.code}]" if error.code else ""
        print(f"error: {type(error).__name__}{code}: {error.hint}", file=sys.stderr)
        return exit_code(error)
    print(json.dumps(_receipt_json(receipt, sandbox=args.sandbox), ensure_ascii=False))
    return 0


@contextlib.contextmanager
def _service(args: argparse.Namespace) -> Iterator[SmsService]:
    if not args.sandbox:
        with SmsService(Settings.load(args.config)) as service:
            yield service
        return
    from .emulator import Emulator

    key_id, secret = "sandbox-" + secrets.token_hex(4), secrets.token_urlsafe(24)
    with Emulator(access_keys={key_id: secret}) as emulator:
        settings = Settings.load(
            args.config, environ={}, endpoint=emulator.endpoint, protocol="http", ca_file=None
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
