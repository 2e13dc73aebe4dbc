"""The inbox's JSON control API under /_emulator/, driven over real HTTP as curl would."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from alibabacloud_dysmsapi20180501 import models
from alibabacloud_dysmsapi20180501.client import Client
from alibabacloud_tea_openapi.exceptions import ThrottlingException
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_util.models import RuntimeOptions

from globesms.emulator import Emulator, HttpError, Reply
from globesms.emulator._codes import find_code

KEY_ID = "inboxKey"
SECRET = "inboxSecret-1234"
TOKEN = "admin-token-5f4e3d2c"
UK = "447700900123"
HK = "85212345678"
RT = RuntimeOptions()
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(access_keys={KEY_ID: SECRET}) as emulator:
        yield emulator


def client_for(emu: Emulator) -> Client:
    return Client(Config(access_key_id=KEY_ID, access_key_secret=SECRET,
                         endpoint=emu.endpoint, protocol=emu.protocol))


def send(emu: Emulator, to: str = UK, message: str = "Your code is 483920") -> Any:
    request = models.SendMessageToGlobeRequest(to=to, message=message)
    return client_for(emu).send_message_to_globe_with_options(request, RT).body


def query(emu: Emulator, message_id: str) -> Any:
    request = models.QueryMessageRequest(message_id=message_id)
    return client_for(emu).query_message_with_options(request, RT).body


def call(
    emu: Emulator,
    method: str,
    path: str,
    body: object = None,
    *,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    """One control-API request; returns (status, parsed JSON or text)."""
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    data = raw if raw is not None else json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        emu.admin_url + path, method=method, data=data, headers=all_headers
    )
    try:
        with _OPENER.open(request, timeout=10) as response:
            status, payload, kind = response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        status, payload, kind = error.code, error.read(), error.headers
    if "json" in kind.get("Content-Type", ""):
        return status, json.loads(payload)
    return status, payload.decode()


# -- reading -----------------------------------------------------------------------------


def test_messages_list_filters_by_number_text_and_limit(emu: Emulator) -> None:
    """GET messages filters by to (any spelling), q and limit (the most recent N, oldest first)."""
    first = send(emu, UK, "Your code is 111111").message_id
    send(emu, HK, "Hello from Hong Kong")
    third = send(emu, UK, "Your code is 333333").message_id
    status, body = call(emu, "GET", "messages?to=%2B44%207700%20900123")
    assert status == 200
    assert [m["message_id"] for m in body["messages"]] == [first, third]
    _, body = call(emu, "GET", "messages?to=%2B44%207700%20900123&limit=1")
    assert [m["message_id"] for m in body["messages"]] == [third]
    _, body = call(emu, "GET", "messages?q=hong")
    assert [m["to"] for m in body["messages"]] == [HK]
    assert call(emu, "GET", "messages?limit=0")[0] == 400


def test_message_json_has_encoding_segments_code_and_delivery(emu: Emulator) -> None:
    """Each listed message carries encoding, segments, the code and its delivery state."""
    send(emu, UK, "验证码 4821 请勿泄露")
    [message] = call(emu, "GET", "messages")[1]["messages"]
    assert (message["encoding"], message["segments"], message["code"]) == ("UCS-2", 1, "4821")
    assert message["message"][message["code_at"]:].startswith("4821")
    assert message["delivery"] == {"status": "sent", "error_code": None, "description": None}


def test_latest_code_for_a_number(emu: Emulator) -> None:
    """GET codes/latest?to= answers {to, code, message_id} of the newest message with a code."""
    send(emu, UK, "Your code is 111111")
    newest = send(emu, UK, "Your login code is 222222").message_id
    send(emu, UK, "Welcome aboard")  # no code: skipped
    status, body = call(emu, "GET", "codes/latest?to=%2B447700900123")
    assert (status, body) == (200, {"to": UK, "code": "222222", "message_id": newest})
    assert emu.latest_code("+44 7700 900123") == "222222"


def test_latest_code_is_404_for_an_unknown_number(emu: Emulator) -> None:
    """A number with no message (or no code) answers 404 with a JSON error."""
    send(emu, HK, "no digits here")
    assert call(emu, "GET", "codes/latest?to=447700900999")[0] == 404
    status, body = call(emu, "GET", f"codes/latest?to={HK}")
    assert (status, body["error"]) == (404, "NotFound")
    assert emu.latest_code(HK) is None


def test_latest_message(emu: Emulator) -> None:
    """GET messages/latest answers the newest message (per number with to=), else 404."""
    assert call(emu, "GET", "messages/latest")[0] == 404
    send(emu, UK, "one")
    newest = send(emu, HK, "two").message_id
    assert call(emu, "GET", "messages/latest")[1]["message"]["message_id"] == newest
    assert call(emu, "GET", f"messages/latest?to={UK}")[1]["message"]["message"] == "one"
    latest = emu.latest_message(UK)
    assert latest is not None and latest.message == "one"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Your code is 483920. Do not share it.", "483920"),
        ("PIN 0042", "0042"),
        ("Code 123 only three digits", None),
        ("Call +447700900123 now", None),
        ("Total 1234.50 paid", None),
        ("Your code is 12345678901 too long", None),
        ("Your code is 654321.\n\n@shop.example.com #654321", "654321"),
        ("Code 111111\n@login.example #222222", "222222"),
        ("no code at all", None),
        ("Amount 5,000 then code 7788", "7788"),
    ],
)
def test_code_detection(text: str, code: str | None) -> None:
    """4-10 standalone ASCII digits are the code; a WebOTP last line names it explicitly."""
    found = find_code(text)
    assert (found[0] if found else None) == code
    if found is not None:
        assert text[found[1]:found[1] + len(found[0])] == found[0]


# -- changing state ------------------------------------------------------------------------


def test_message_delivery_state_is_what_query_message_reports(emu: Emulator) -> None:
    """PUT messages/<id>/delivery changes what QueryMessage (official SDK) reports."""
    message_id = send(emu).message_id
    other_id = send(emu).message_id
    status, body = call(
        emu, "PUT", f"messages/{message_id}/delivery", {"status": "failed", "error_code": "BLOCKED"}
    )
    assert (status, body["message"]["delivery"]["status"]) == (200, "failed")
    reported = query(emu, message_id)
    assert (reported.status, reported.error_code) == ("2", "BLOCKED")
    assert query(emu, other_id).status == "1"
    call(emu, "PUT", f"messages/{message_id}/delivery", {"status": "sending"})
    assert query(emu, message_id).status == "3"
    assert emu.delivery_status(message_id) == "sending"
    assert call(emu, "PUT", f"messages/{message_id}/delivery", {"status": "lost"})[0] == 400
    assert call(emu, "PUT", "messages/999/delivery", {"status": "sent"})[0] == 404


def test_delivery_rules_per_number(emu: Emulator) -> None:
    """POST delivery sets a number's rule (as set_delivery); DELETE removes every rule."""
    message_id = send(emu).message_id
    status, body = call(emu, "POST", "delivery", {"to": "+44 7700 900123", "status": "sending"})
    assert (status, body["rules"]) == (
        200, [{"to": UK, "status": "sending", "error_code": None, "description": None}]
    )
    assert query(emu, message_id).status == "3"
    emu.set_delivery(None, "failed")
    assert {rule["to"] for rule in call(emu, "GET", "delivery")[1]["rules"]} == {UK, None}
    assert call(emu, "DELETE", "delivery")[1] == {"rules": []}
    assert query(emu, message_id).status == "1"


def test_clear_messages_and_requests(emu: Emulator) -> None:
    """DELETE messages and DELETE requests empty what the Python API sees too."""
    send(emu)
    assert call(emu, "DELETE", "messages") == (200, {"cleared": "messages"})
    assert emu.messages == []
    assert len(emu.requests) == 1
    assert call(emu, "DELETE", "requests") == (200, {"cleared": "requests"})
    assert emu.requests == []
    send(emu)
    assert len(emu.messages) == 1


def test_scripts_use_the_outcome_vocabulary(emu: Emulator) -> None:
    """POST scripts queues Reply / HttpError outcomes for a number, played to the SDK in order."""
    outcomes = [
        {"type": "Reply", "code": "SYSTEM_ERROR"},
        {"type": "HttpError", "status": 503, "retry_after_ms": 1500},
    ]
    status, body = call(emu, "POST", "scripts", {"to": "+44 7700 900123", "outcomes": outcomes})
    assert status == 200
    assert [o["type"] for o in body["scripts"][0]["outcomes"]] == ["Reply", "HttpError"]
    assert send(emu).response_code == "SYSTEM_ERROR"
    with pytest.raises(ThrottlingException) as caught:  # what the SDK makes of a retry hint
        send(emu)
    assert (caught.value.status_code, caught.value.retry_after) == (503, 1500)
    assert send(emu).response_code == "OK"
    assert call(emu, "GET", "scripts")[1] == {"scripts": []}


def test_scripts_share_state_with_the_python_api(emu: Emulator) -> None:
    """What Emulator.script queued is listed over HTTP, and DELETE scripts drops it."""
    emu.script(HK, Reply("AMOUNT_NOT_ENOUGH"), HttpError(500))
    _, body = call(emu, "GET", "scripts")
    assert body["scripts"][0]["to"] == HK
    assert body["scripts"][0]["outcomes"][0] == {
        "type": "Reply", "code": "AMOUNT_NOT_ENOUGH", "description": ""
    }
    assert call(emu, "DELETE", "scripts")[1] == {"cleared": "scripts"}
    assert send(emu, HK).response_code == "OK"


def test_delay_and_drop_outcomes_parse(emu: Emulator) -> None:
    """Delay (with a nested then) and Drop are accepted; the dropped send never answers."""
    status, body = call(emu, "POST", "scripts", {"to": None, "outcomes": [
        {"type": "Delay", "seconds": 0, "then": {"type": "Reply", "code": "SYSTEM_ERROR"}},
        {"type": "Drop", "after_read": False},
    ]})
    assert status == 200
    assert body["scripts"][0]["outcomes"][0]["then"]["code"] == "SYSTEM_ERROR"
    assert send(emu).response_code == "SYSTEM_ERROR"
    request = models.SendMessageToGlobeRequest(to=UK, message="x")
    with pytest.raises(Exception, match=r"(?i)connection|aborted|closed|remote"):
        client_for(emu).send_message_to_globe_with_options(
            request, RuntimeOptions(autoretry=False, max_attempts=0)
        )
    assert emu.messages == []


@pytest.mark.parametrize(
    "outcome",
    [
        {"type": "Explode"},
        {"code": "SYSTEM_ERROR"},
        {"type": "Reply"},
        {"type": "Reply", "code": "X", "colour": "red"},
        {"type": "HttpError", "status": 99},
        {"type": "Delay", "seconds": -1},
    ],
)
def test_bad_outcomes_are_400_and_queue_nothing(emu: Emulator, outcome: dict[str, Any]) -> None:
    """An outcome the vocabulary does not know is refused whole; nothing is queued."""
    body = {"to": UK, "outcomes": [{"type": "Reply", "code": "SYSTEM_ERROR"}, outcome]}
    status, answer = call(emu, "POST", "scripts", body)
    assert (status, answer["error"]) == (400, "InvalidParameter")
    assert call(emu, "GET", "scripts")[1] == {"scripts": []}


def test_chaos_switch(emu: Emulator) -> None:
    """PUT chaos turns chaos mode on with Emulator.chaos's settings; DELETE turns it off."""
    status, body = call(emu, "PUT", "chaos", {"seed": 7, "system_error": 1.0})
    assert (status, body["chaos"]["system_error"]) == (200, 1.0)
    assert send(emu).response_code == "SYSTEM_ERROR"
    assert call(emu, "DELETE", "chaos") == (200, {"chaos": None})
    assert send(emu).response_code == "OK"
    assert call(emu, "PUT", "chaos", {"drop": 2})[0] == 400
    assert call(emu, "PUT", "chaos", {"explode": 0.5})[0] == 400
    assert call(emu, "GET", "chaos") == (200, {"chaos": None})


def test_reset(emu: Emulator) -> None:
    """POST reset forgets messages, requests, scripts and rules, like Emulator.reset()."""
    send(emu)
    emu.script(UK, Reply("SYSTEM_ERROR"))
    assert call(emu, "POST", "reset") == (200, {"reset": True})
    assert (emu.messages, emu.requests) == ([], [])
    assert send(emu).response_code == "OK"


def test_bodies_must_be_json(emu: Emulator) -> None:
    """A body that is not application/json (what a cross-site form sends) is 415, not applied."""
    status, _ = call(
        emu, "POST", "chaos", headers={"Content-Type": "text/plain"},
        raw=b'{"system_error": 1.0}',
    )
    assert status == 415
    assert call(emu, "PUT", "chaos", raw=b"{not json")[0] == 400
    assert send(emu).response_code == "OK"


def test_wrong_method_and_unknown_path(emu: Emulator) -> None:
    """A known path with the wrong method is 405; an unknown path 404, both in JSON."""
    assert call(emu, "POST", "messages", {})[0] == 405
    assert call(emu, "GET", "reset")[0] == 405
    assert call(emu, "GET", "nothing")[0] == 404


# -- live updates -------------------------------------------------------------------------


def _read_event(stream: Any) -> str:
    """The data line of the next ``change`` event (keep-alive comments skipped)."""
    while True:
        line = stream.readline().decode()
        assert line, "the event stream ended"
        if line.startswith("data: "):
            return line[len("data: "):].strip()


def test_event_stream_pushes_a_change_when_a_message_arrives(emu: Emulator) -> None:
    """GET events is text/event-stream; a new message pushes a change event at once."""
    connection = http.client.HTTPConnection(*emu.endpoint.split(":"), timeout=10)
    connection.request("GET", "/_emulator/events")
    response = connection.getresponse()
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    first = _read_event(response)
    send(emu)  # the signed API is served while the stream is open
    assert int(_read_event(response)) > int(first)
    connection.close()


def test_close_ends_open_event_streams(emu: Emulator) -> None:
    """Closing the emulator ends an open event stream (the reader sees the end)."""
    connection = http.client.HTTPConnection(*emu.endpoint.split(":"), timeout=10)
    connection.request("GET", "/_emulator/events")
    response = connection.getresponse()
    _read_event(response)
    emu.close()
    rest = response.read()
    assert b"event: change" not in rest
    connection.close()


# -- limits ----------------------------------------------------------------------------------


def test_at_most_max_records_are_kept() -> None:
    """Beyond max_records the oldest messages and requests are dropped; counting goes on."""
    with Emulator(access_keys={KEY_ID: SECRET}, max_records=3) as emu:
        ids = [send(emu, UK, f"message {n}").message_id for n in range(5)]
        assert [m.message_id for m in emu.messages] == ids[2:]
        assert len(emu.requests) == 3
        assert emu.wait_for_requests(5, timeout=0)
        assert query(emu, ids[0]).response_code == "DATA_NOT_EXIST"
        assert len(call(emu, "GET", "messages")[1]["messages"]) == 3


def test_max_records_must_be_positive() -> None:
    """max_records below 1 is refused at construction."""
    with pytest.raises(ValueError, match="max_records"):
        Emulator(access_keys={KEY_ID: SECRET}, max_records=0)


# -- access ----------------------------------------------------------------------------------


def test_non_loopback_bind_needs_a_token_or_no_auth() -> None:
    """Bound off loopback without admin_token (or no_auth=True) the Emulator refuses to build."""
    with pytest.raises(ValueError, match="admin_token"):
        Emulator(access_keys={KEY_ID: SECRET}, host="0.0.0.0")
    with pytest.raises(ValueError, match="admin_token"):
        Emulator(access_keys={KEY_ID: SECRET}, host="0.0.0.0", admin_token="short")
    Emulator(access_keys={KEY_ID: SECRET}, host="0.0.0.0", no_auth=True)


@pytest.fixture
def guarded() -> Iterator[Emulator]:
    """An emulator bound to every interface, reached here through 127.0.0.1, with a token."""
    with Emulator(
        access_keys={KEY_ID: SECRET}, host="0.0.0.0", admin_token=TOKEN
    ) as emulator:
        yield emulator


def test_non_loopback_refuses_page_and_api_without_the_token(guarded: Emulator) -> None:
    """Without the token the page answers the login form (401) and every API path 401."""
    send(guarded)  # the signed API works as before, checked by its signature
    status, page = call(guarded, "GET", "")
    assert status == 401
    assert 'name="token"' in page and "data-message-id" not in page
    for method, path in [("GET", "messages"), ("GET", f"codes/latest?to={UK}"),
                         ("DELETE", "messages"), ("GET", "events"), ("POST", "reset")]:
        status, body = call(guarded, method, path)
        assert (status, body["error"]) == (401, "Unauthorized"), path
        assert TOKEN not in json.dumps(body)
    assert call(guarded, "GET", "messages", headers={"X-Emulator-Token": "wrong-token"})[0] == 401
    assert call(guarded, "GET", "inbox.css")[0] == 200  # the login form's styles, nothing more
    assert len(guarded.messages) == 1


def test_non_loopback_accepts_header_bearer_and_login_cookie(guarded: Emulator) -> None:
    """The token works as X-Emulator-Token, as a bearer token, and as the login form's cookie."""
    send(guarded)
    assert call(guarded, "GET", "messages", headers={"X-Emulator-Token": TOKEN})[0] == 200
    assert call(guarded, "GET", "messages", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    connection = http.client.HTTPConnection(*guarded.endpoint.split(":"), timeout=10)
    connection.request("POST", "/_emulator/login", body="token=nope",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    refused = connection.getresponse()
    refused.read()
    assert refused.status == 401 and refused.getheader("Set-Cookie") is None
    connection.request("POST", "/_emulator/login", body=f"token={TOKEN}",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    answer = connection.getresponse()
    answer.read()
    assert (answer.status, answer.getheader("Location")) == (303, "/_emulator/")
    cookie = answer.getheader("Set-Cookie")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    connection.close()
    status, page = call(guarded, "GET", "", headers={"Cookie": cookie.split(";", 1)[0]})
    assert status == 200 and 'type="search"' in page
    assert TOKEN not in repr(guarded)


def test_no_auth_serves_off_loopback_without_a_token() -> None:
    """With no_auth=True an emulator bound off loopback serves the API without a token."""
    with Emulator(access_keys={KEY_ID: SECRET}, host="0.0.0.0", no_auth=True) as emu:
        send(emu)
        assert call(emu, "GET", "messages")[0] == 200


def test_loopback_inbox_refuses_a_foreign_host_header(emu: Emulator) -> None:
    """On loopback without a token, a request naming another Host (DNS rebinding) is 403."""
    host, port = emu.endpoint.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /_emulator/messages HTTP/1.1\r\nHost: evil.example:80\r\n\r\n")
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 403
    assert call(emu, "GET", "messages")[0] == 200


def test_page_files_are_declared_as_package_data() -> None:
    """Every file of the page is matched by pyproject's package-data, so the wheel ships it."""
    import fnmatch
    import pathlib

    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    root = pathlib.Path(__file__).resolve().parent.parent
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["globesms"]
    static = root / "src" / "globesms" / "emulator" / "static"
    files = sorted(p.relative_to(root / "src" / "globesms").as_posix() for p in static.iterdir())
    assert {"emulator/static/inbox.html", "emulator/static/inbox.js"} <= set(files)
    for name in files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), name


def test_python_twins_of_the_control_api(emu: Emulator) -> None:
    """set_message_delivery, clear_messages and clear_requests act like their HTTP paths."""
    message_id = send(emu).message_id
    emu.set_message_delivery(message_id, "failed", error_code="BLOCKED")
    assert (query(emu, message_id).status, query(emu, message_id).error_code) == ("2", "BLOCKED")
    _, body = call(emu, "GET", f"messages/{message_id}")
    assert body["message"]["delivery"]["error_code"] == "BLOCKED"
    with pytest.raises(ValueError, match="status"):
        emu.set_message_delivery(message_id, "lost")
    with pytest.raises(KeyError):
        emu.set_message_delivery("no-such-id", "sent")
    emu.clear_messages()
    assert call(emu, "GET", "messages")[1] == {"messages": []}
    emu.clear_requests()
    assert call(emu, "GET", "requests")[1] == {"requests": []}
    assert emu.latest_message() is None and emu.latest_code() is None


def test_ipv6_loopback_bind() -> None:
    """host='::1' binds the IPv6 loopback, bracketed in endpoint, open like 127.0.0.1."""
    try:
        emulator = Emulator(access_keys={KEY_ID: SECRET}, host="::1").start()
    except OSError as error:  # a machine without IPv6
        pytest.skip(f"no IPv6 loopback here: {error}")
    with emulator as emu:
        assert emu.endpoint.startswith("[::1]:")
        assert send(emu).response_code == "OK"
        assert call(emu, "GET", "codes/latest")[1]["code"] == "483920"
