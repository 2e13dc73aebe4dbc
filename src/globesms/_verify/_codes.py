"""Codes and keyed HMACs: nothing here is stored or logged in clear.

- A code is ``code_length`` digits from :mod:`secrets` (resend ``"new"``), or, for resend
  ``"same"``, derived from the secret and a random per-challenge seed so it can be sent again
  without being stored.
- Numbers, prefixes and rate keys become HMAC-SHA256 values under the secret (a plain hash of a
  phone number is reversible by enumeration; a keyed one is not without the secret).
- What a store keeps for a code is ``bind(candidate, challenge_id)``: a hash of the keyed
  HMAC of purpose, number and code, bound to the challenge. A check sends only ``candidate``;
  the store binds it to the challenge it holds and compares (``hmac.compare_digest`` in Python;
  in Redis, a comparison of two hashes, which leaks nothing usable about the stored one).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


class Keys:
    """The HMACs of one secret. ``repr`` never shows the secret."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def __repr__(self) -> str:
        return "Keys(<secret>)"

    def _mac(self, *parts: str) -> str:
        message = "\x1f".join(parts).encode("utf-8")
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def subject(self, kind: str, value: str) -> str:
        """A 128-bit keyed name for a number, prefix or rate key (``kind`` separates them)."""
        return self._mac("subject", kind, value)[:32]

    def candidate(self, purpose: str, digits: str, code: str) -> str:
        """The keyed HMAC of a code for one number and purpose."""
        return self._mac("code", purpose, digits, code)

    def derived_code(self, seed: str, length: int) -> str:
        """The code of a ``resend="same"`` challenge: a PRF of the secret and its seed."""
        value = int(self._mac("same", seed), 16) % (10**length)
        return f"{value:0{length}d}"


def new_code(length: int) -> str:
    """``length`` random digits from :mod:`secrets`."""
    return f"{secrets.randbelow(10**length):0{length}d}"


def new_id() -> str:
    """A challenge id (also the SMS TaskId): 128 random bits, URL-safe."""
    return secrets.token_urlsafe(16)


def new_seed() -> str:
    return secrets.token_hex(16)


def bind(candidate: str, challenge_id: str) -> str:
    """What a store keeps for a code: ``candidate`` bound to one challenge.

    SHA-1 because Redis' Lua has ``redis.sha1hex`` and the binding must be computed there too;
    the secret is already inside ``candidate`` (an HMAC-SHA256), so this hash adds the binding,
    not the keying.
    """
    data = (candidate + challenge_id).encode("ascii")
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def matches(stored: str, candidate: str, challenge_id: str) -> bool:
    """Constant-time: whether ``candidate`` is the code bound in ``stored``."""
    return hmac.compare_digest(stored, bind(candidate, challenge_id))


def well_formed(code: object, length: int) -> bool:
    """Whether ``code`` is exactly ``length`` ASCII digits."""
    return isinstance(code, str) and len(code) == length and code.isascii() and code.isdigit()
