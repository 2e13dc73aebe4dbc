"""The verification SMS: a template per purpose and locale, WebOTP and SMS Retriever lines.

A template may use ``{code}``, ``{minutes}`` and ``{app}``. With ``webotp_domain`` the last line
is ``@domain #code`` (WebOTP, Safari autofill); with ``android_app_hash`` the 11-character hash
goes on the line before it (SMS Retriever). Templates are checked when the service is built: a
text that cannot fit ``max_segments`` SMS segments is a :class:`ConfigurationError`.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping

from .._errors import ConfigurationError
from .._segments import segments_of
from ._config import VerifySettings

DEFAULT_TEMPLATE = "{code} is your {app} code. It expires in {minutes} min. Do not share it."
_FIELDS = {"code", "minutes", "app"}

class Messages:
    """Renders the SMS for a purpose and locale; validated when built."""

    def __init__(self, settings: VerifySettings) -> None:
        self._settings = settings
        self._templates: Mapping[str, str] = {"default": DEFAULT_TEMPLATE,
                                              **settings.templates}
        self._minutes = max(1, math.ceil(settings.ttl / 60))
        worst = "8" * settings.code_length
        for name, template in self._templates.items():
            _check_fields(name, template)
            text = self._render(template, worst)
            count = segments_of(text)
            if count > settings.max_segments:
                raise ConfigurationError.for_setting(
                    f"templates.{name}", "<template>",
                    f"needs {count} SMS segments with the code and links; shorten it or raise "
                    f"max_segments (now {settings.max_segments})",
                )

    def render(self, code: str, purpose: str, locale: str | None) -> str:
        return self._render(self.template(purpose, locale), code)

    def template(self, purpose: str, locale: str | None) -> str:
        names = [purpose, "default"]
        if locale:
            names = [f"{purpose}.{locale}", purpose, f"default.{locale}", "default"]
        return next(self._templates[n] for n in names if n in self._templates)

    def _render(self, template: str, code: str) -> str:
        text = template.format(code=code, minutes=self._minutes, app=self._settings.app_name)
        extra = []
        if self._settings.android_app_hash:
            extra.append(self._settings.android_app_hash)
        if self._settings.webotp_domain:
            extra.append(f"@{self._settings.webotp_domain} #{code}")
        return text + "\n\n" + "\n".join(extra) if extra else text


def _check_fields(name: str, template: str) -> None:
    try:
        used = {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}
    except ValueError as exc:
        raise ConfigurationError.for_setting(f"templates.{name}", "<template>",
                                             f"is not a valid template ({exc})") from None
    if "code" not in used:
        raise ConfigurationError.for_setting(f"templates.{name}", "<template>",
                                             "must contain {code}")
    unknown = used - _FIELDS
    if unknown:
        raise ConfigurationError.for_setting(
            f"templates.{name}", "<template>",
            f"may only use {{code}}, {{minutes}} and {{app}} (not {{{sorted(unknown)[0]}}})",
        )
