"""The mapping table against the list of every provider code globesms knows."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import globesms
from globesms import SmsError, TransientError
from globesms._errors import CODE_RULES, error_for_code, rule_for, strip_prefix

_TABLE = Path(__file__).parent / "data" / "provider_codes.tsv"


def _rows() -> list[dict[str, str]]:
    lines = [line for line in _TABLE.read_text().splitlines() if not line.startswith("#")]
    return list(csv.DictReader(lines, delimiter="\t"))


ROWS = _rows()


def test_the_code_list_is_not_empty() -> None:
    """The data file parsed into the expected shape (guards against an empty walk)."""
    assert len(ROWS) > 60
    assert {"code", "http_status", "layer", "expected_class"} <= set(ROWS[0])


@pytest.mark.parametrize("row", [r for r in ROWS if r["code"] != "OK"], ids=lambda r: r["code"])
def test_every_known_code_has_a_deliberate_rule(row: dict[str, str]) -> None:
    """Each code has its own entry (not a family or status fallback) and maps to its class."""
    code = row["code"]
    assert strip_prefix(code) in CODE_RULES, f"{code} has no deliberate mapping"
    error = error_for_code(code, http_status=int(row["http_status"]), request_id="REQ-1")
    assert type(error).__name__ == row["expected_class"]
    assert error.code == code
    assert error.retryable is isinstance(error, TransientError)
    assert error.hint


def test_no_rule_without_a_listed_code() -> None:
    """Every rule in the table corresponds to a listed code (no stale entries)."""
    listed = {strip_prefix(r["code"]) for r in ROWS}
    assert set(CODE_RULES) <= listed


def test_expected_classes_are_public() -> None:
    """Every class the table names is exported from globesms."""
    for row in ROWS:
        if row["code"] != "OK":
            assert issubclass(getattr(globesms, row["expected_class"]), SmsError)


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("Throttling.Foo", 400, "Throttled"),
        ("InvalidSecurityToken.Expired", 400, "AuthError"),
        ("MissingMessage", 400, "InvalidRequest"),
        ("InvalidTo", 400, "InvalidRequest"),
        ("Forbidden.Something", 403, "AuthError"),
        (None, 429, "Throttled"),
        (None, 503, "ServiceUnavailable"),
        (None, 502, "DeliveryUncertain"),
        ("Brand.New", 418, "SmsError"),
        ("isv.NEVER_SEEN", 200, "SmsError"),
    ],
)
def test_families_then_status_then_root(code: str | None, status: int, expected: str) -> None:
    """Unlisted codes fall back to their family, then the HTTP status, then SmsError."""
    assert rule_for(code, status).error.__name__ == expected


def test_prefix_is_stripped_but_code_kept_verbatim() -> None:
    """isv./isp. prefixes are ignored for lookup and kept in the error's code."""
    error = error_for_code("isv.MOBILE_NUMBER_ILLEGAL", http_status=200)
    assert type(error) is globesms.InvalidRecipient
    assert error.code == "isv.MOBILE_NUMBER_ILLEGAL"


def test_delivery_uncertain_is_not_transient() -> None:
    """DeliveryUncertain sits directly under SmsError and is never retryable by default."""
    assert globesms.DeliveryUncertain.__bases__ == (SmsError,)
    assert globesms.DeliveryUncertain().retryable is False
