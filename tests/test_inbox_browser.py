"""The SMS inbox page in a real headless Chromium (Debian's), driven by Playwright.

Skips with a one-line reason when Chromium or Playwright is missing; with
GLOBESMS_REQUIRE_BROWSER=1 (set by .ci/run) it fails instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from alibabacloud_dysmsapi20180501 import models
from alibabacloud_dysmsapi20180501.client import Client
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_util.models import RuntimeOptions

from globesms.emulator import Emulator
from support import unavailable

KEY_ID = "browserKey"
SECRET = "browserSecret-1234"
TOKEN = "browser-admin-token-77"
UK = "447700900123"
HK = "85212345678"
REQUIRE_VAR = "GLOBESMS_REQUIRE_BROWSER"
WAIT_MS = 5000
"""Bound on every wait for the page (a loaded CI machine); no test sleeps."""
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def _chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium") or ""):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _unavailable(reason: str) -> None:
    unavailable(REQUIRE_VAR, reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium()
    if executable is None:
        _unavailable("no Chromium at /usr/bin/chromium (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(access_keys={KEY_ID: SECRET}) as emulator:
        yield emulator


@pytest.fixture
def page(browser: Any, emu: Emulator) -> Iterator[Any]:
    """The inbox page, open and live (its event stream connected)."""
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    opened.goto(emu.inbox_url)
    opened.wait_for_selector("#status.live")
    yield opened
    context.close()


def send(emu: Emulator, to: str = UK, message: str = "Your code is 483920") -> str:
    client = Client(Config(access_key_id=KEY_ID, access_key_secret=SECRET,
                           endpoint=emu.endpoint, protocol=emu.protocol))
    request = models.SendMessageToGlobeRequest(to=to, message=message, from_="Acme")
    return str(client.send_message_to_globe_with_options(request, RuntimeOptions()).body.message_id)


def query_status(emu: Emulator, message_id: str) -> tuple[str, str]:
    client = Client(Config(access_key_id=KEY_ID, access_key_secret=SECRET,
                           endpoint=emu.endpoint, protocol=emu.protocol))
    request = models.QueryMessageRequest(message_id=message_id)
    body = client.query_message_with_options(request, RuntimeOptions()).body
    return str(body.status), str(body.error_code)


def shown_ids(page: Any) -> list[str]:
    return [str(i) for i in page.eval_on_selector_all(
        "[data-message-id]", "nodes => nodes.map(n => n.dataset.messageId)"
    )]


def test_sdk_message_appears_without_reload_with_its_code(page: Any, emu: Emulator) -> None:
    """A message sent through the official SDK shows up live, its code in data-code."""
    page.evaluate("window.__sameDocument = true")
    message_id = send(emu, UK, "Your code is 483920. Do not share it.")
    item = page.wait_for_selector(f'[data-message-id="{message_id}"]')
    assert item.query_selector("mark[data-code]").get_attribute("data-code") == "483920"
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    text = item.inner_text()
    for fact in ("+447700900123", "Acme", "SendMessageToGlobe", "GSM-7", "1 segment", "delivered"):
        assert fact in page.inner_text("main"), fact
    assert "Do not share it." in text


def test_webotp_code_and_newest_first(page: Any, emu: Emulator) -> None:
    """The WebOTP #code is the highlighted one; conversations and messages are newest first."""
    first = send(emu, HK, "Hello")
    second = send(emu, UK, "Code 111111\n\n@shop.example #222222")
    page.wait_for_selector(f'[data-message-id="{second}"] [data-code="222222"]')
    page.wait_for_selector(f'[data-message-id="{first}"]')
    third = send(emu, HK, "Your code is 3333")
    page.wait_for_selector(f'[data-message-id="{third}"]')
    assert shown_ids(page) == [third, first, second]


def test_copy_button_puts_the_code_on_the_clipboard(browser: Any, emu: Emulator) -> None:
    """One click on Copy puts exactly the code on the clipboard."""
    message_id = send(emu, UK, "Your code is 483920")
    context = browser.new_context()
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=emu.inbox_url[:-11])
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(emu.inbox_url)
    page.click(f'[data-message-id="{message_id}"] button.copy')
    page.wait_for_selector(f'[data-message-id="{message_id}"] button.copy:has-text("Copied")')
    assert page.evaluate("navigator.clipboard.readText()") == "483920"
    context.close()


def test_search_narrows_the_list(page: Any, emu: Emulator) -> None:
    """Typing a number or a word in the labelled search box narrows the messages shown."""
    uk_id = send(emu, UK, "Your code is 483920")
    hk_id = send(emu, HK, "Parcel arriving today")
    page.wait_for_selector(f'[data-message-id="{hk_id}"]')
    page.wait_for_selector(f'[data-message-id="{uk_id}"]')
    assert page.get_attribute("#search", "type") == "search"
    assert page.inner_text('label[for="search"]').strip()
    page.get_by_label("Search number or text").fill("+852")
    page.wait_for_function("document.querySelectorAll('[data-message-id]').length === 1")
    assert shown_ids(page) == [hk_id]
    page.fill("#search", "code is")
    page.wait_for_function(
        f"document.querySelector('[data-message-id]').dataset.messageId === '{uk_id}'"
    )
    assert shown_ids(page) == [uk_id]
    page.fill("#search", "")
    page.wait_for_function("document.querySelectorAll('[data-message-id]').length === 2")


def test_clear_all_empties_the_inbox(page: Any, emu: Emulator) -> None:
    """Clear all empties the page and what the emulator holds."""
    message_id = send(emu)
    page.wait_for_selector(f'[data-message-id="{message_id}"]')
    page.click("#clear")
    page.wait_for_selector("[data-message-id]", state="detached")
    assert emu.messages == []
    assert page.is_visible("#empty")


def test_delivery_state_set_in_the_page_is_what_query_message_reports(
    page: Any, emu: Emulator
) -> None:
    """Choosing failed with an error code in the page makes QueryMessage report exactly that."""
    message_id = send(emu)
    assert query_status(emu, message_id) == ("1", "DELIVERED")
    page.wait_for_selector(f'[data-message-id="{message_id}"]')
    page.select_option(f"#state-{message_id}", "failed")
    page.fill(f"#error-{message_id}", "BLOCKED_BY_CARRIER")
    page.click(f'[data-message-id="{message_id}"] button:has-text("Set state")')
    page.wait_for_selector(f'[data-message-id="{message_id}"] [data-delivery="failed"]')
    assert query_status(emu, message_id) == ("2", "BLOCKED_BY_CARRIER")
    page.select_option(f"#state-{message_id}", "sending")
    page.click(f'[data-message-id="{message_id}"] button:has-text("Set state")')
    page.wait_for_selector(f'[data-message-id="{message_id}"] [data-delivery="sending"]')
    assert query_status(emu, message_id)[0] == "3"


def test_html_looking_body_is_shown_as_text(page: Any, emu: Emulator) -> None:
    """A body of <script> and <img onerror> is shown as text and never runs."""
    body = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> 4321'
    message_id = send(emu, UK, body)
    item = page.wait_for_selector(f'[data-message-id="{message_id}"]')
    text = item.query_selector(".text").text_content()
    assert text is not None and text.replace("Copy", "") == body
    assert item.query_selector("script") is None and item.query_selector("img") is None
    assert page.evaluate("window.__pwned") is None


def test_keyboard_reaches_every_control(page: Any, emu: Emulator) -> None:
    """Tab alone reaches the search box, Clear all, the copy button and the state controls."""
    message_id = send(emu)
    page.wait_for_selector(f'[data-message-id="{message_id}"]')
    reached: list[str] = []
    for _ in range(12):
        page.keyboard.press("Tab")
        reached.append(page.evaluate(
            "(() => { const e = document.activeElement;"
            " return e.id || e.getAttribute('aria-label') || e.textContent.trim(); })()"
        ))
    for control in ("search", "clear", "Copy code 483920", f"state-{message_id}", "Set state"):
        assert control in reached, (control, reached)
    page.focus(f"#state-{message_id}")
    page.keyboard.press("ArrowDown")  # delivered -> failed, by keyboard alone
    assert page.is_visible(f"#error-{message_id}")


def test_readable_in_a_phone_sized_window(browser: Any, emu: Emulator) -> None:
    """At 360x640 the page does not scroll sideways, even with a long unbroken message."""
    send(emu, UK, "Your code is 483920 " + "x" * 300)
    context = browser.new_context(viewport={"width": 360, "height": 640})
    phone = context.new_page()
    phone.set_default_timeout(WAIT_MS)
    phone.goto(emu.inbox_url)
    phone.wait_for_selector("[data-code]")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    assert phone.is_visible("#search") and phone.is_visible("#clear")
    context.close()


def test_non_loopback_without_token_refuses_page_and_api(browser: Any) -> None:
    """Bound off loopback, the page shows only the login form and the API answers 401
    until the admin token is given through the form."""
    with Emulator(
        access_keys={KEY_ID: SECRET}, host="0.0.0.0", admin_token=TOKEN
    ) as guarded:
        message_id = send(guarded)
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        answer = page.goto(guarded.inbox_url)
        assert answer is not None and answer.status == 401
        assert page.query_selector("[data-message-id]") is None
        api = page.request.get(guarded.admin_url + "messages")
        assert api.status == 401
        assert "Your code" not in api.text()
        page.fill("#token", "not-the-token")
        page.click("button[type=submit]")
        assert page.query_selector("[data-message-id]") is None
        page.fill("#token", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_selector(f'[data-message-id="{message_id}"] [data-code="483920"]')
        assert page.request.get(guarded.admin_url + "messages").status == 200
        context.close()
