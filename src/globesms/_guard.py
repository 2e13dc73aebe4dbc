"""The test-run guard: while the globesms pytest plugin is active, no service reaches a
non-loopback endpoint, so a test run cannot send a real SMS with a developer's keys.

The plugin switches it on (``--globesms-allow-network`` or the ini option
``globesms_allow_network = true`` keep it off); the driver asks :func:`refusal` before each call.
Nothing here imports the SDK.
"""

from __future__ import annotations

import ipaddress

#: True while a pytest run with the globesms plugin is going on.
active = False


def is_loopback(endpoint: str) -> bool:
    """Whether ``host[:port]`` names this machine (127.0.0.0/8, ::1, localhost)."""
    host = endpoint
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refusal(endpoint: str) -> str | None:
    """Why a call to ``endpoint`` is refused during a test run, or None when it may go."""
    if not active or is_loopback(endpoint):
        return None
    return (
        f"a test tried to reach {endpoint}, which is not this machine, while the globesms pytest "
        "plugin is active; nothing was sent. Build the SmsService inside the test after the "
        "sms_emulator fixture (or with globesms.testing.service_for(emulator)); to really reach a "
        "remote endpoint, run pytest with --globesms-allow-network or set "
        "globesms_allow_network = true in the pytest ini"
    )
