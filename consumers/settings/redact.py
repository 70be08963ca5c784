"""Redaction: credentials never leave the process in logs or metric labels.

Three things are masked wherever they occur in a text:

- the user-info part of a URL: ``rtmp://user:pass@host/app`` -> ``rtmp://***@host/app`` (also
  when the password holds a raw ``/``);
- values of secret-looking keys: ``password=...``, ``sasl_plain_password': '...'``, ``token=...``,
  ``?sig=...``, RTMP ``auth_key=...``, SRT ``passphrase=...`` (query strings, ``key=value`` pairs,
  dict and JSON reprs);
- every configured secret value (e.g. the Kafka SASL password), wherever it appears verbatim.

A :class:`Redactor` is cheap to call and thread-safe; secrets may be added while it is in use.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping

from consumers.settings.root import Settings

MASK = "***"

# scheme://userinfo@ : userinfo has no whitespace or '@'; RFC 3986 forbids a raw '/' in it, but
# FFmpeg takes ``user:pa/ss@host``, so a userinfo with a ':' may hold '/' (over-masking is harmless).
_URL_USERINFO = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/\s@?#]+|[^\s@/?#:]*:[^\s@]*)@"
)
# Keys whose values are secrets, in query strings, key=value lists, dict reprs and JSON.
_SECRET_KEYS = (
    r"[A-Za-z0-9_.\-]*(?:password|passwd|passphrase|pwd|secret|token|api[_\-]?key|access[_\-]?key|auth[_\-]?key"
    r"|credential|sig|signature)(?:[_\-]?(?:key|value))?"
)
_KEY_VALUE = re.compile(
    r"(?P<key>(?P<quote>[\"']?)\b" + _SECRET_KEYS + r"(?P=quote)\s*[:=]\s*)"
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s&,;}\]\)\"']+)",
    re.IGNORECASE,
)
# Cheap pre-check: the key pattern only runs on texts holding one of these words.
_KEY_WORDS = ("passw", "passp", "pwd", "secret", "token", "key", "credential", "sig")
# Environment variables whose values are treated as secrets.
_SECRET_ENV = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|ACCESS_KEY|CREDENTIAL)", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` without its user-info (``rtmp://u:p@h/x`` -> ``rtmp://***@h/x``) and secret query values."""
    return _KEY_VALUE.sub(_mask_value, _URL_USERINFO.sub(r"\g<scheme>" + MASK + "@", url))


def redact_text(text: str) -> str:
    """``text`` with URL user-info and secret-looking key values masked (no configured secrets:
    for texts that leave the process in records, e.g. a dead letter's reason)."""
    return _DEFAULT.redact(text)


def _mask_value(match: re.Match[str]) -> str:
    value = match.group("value")
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group('key')}{quote}{MASK}{quote}"


class Redactor:
    """Masks URL credentials, secret-looking key/value pairs and configured secret values.

    Args:
        secrets: Literal secret values to mask wherever they appear (empty strings are ignored).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        self.add(*secrets)

    @property
    def secret_count(self) -> int:
        """How many distinct literal secrets are masked."""
        return len(self._secrets)

    def add(self, *secrets: str) -> None:
        """Mask these values from now on (longest first, so a secret containing another is masked whole)."""
        new = {s for s in secrets if s}
        if not new:
            return
        with self._lock:
            merged = set(self._secrets) | new
            self._secrets = tuple(sorted(merged, key=len, reverse=True))

    def redact(self, text: str) -> str:
        """``text`` with every credential replaced by ``***``."""
        if not text:
            return text
        out = text
        if "://" in out and "@" in out:
            out = _URL_USERINFO.sub(r"\g<scheme>" + MASK + "@", out)
        lowered = out.lower()
        if any(word in lowered for word in _KEY_WORDS):
            out = _KEY_VALUE.sub(_mask_value, out)
        for secret in self._secrets:
            if secret in out:
                out = out.replace(secret, MASK)
        return out

    __call__ = redact


_DEFAULT = Redactor()


def secrets_from_settings(settings: Settings) -> list[str]:
    """The secret values held by ``settings`` (today: the Kafka SASL password)."""
    password = settings.kafka.sasl_password
    return [password.get_secret_value()] if password else []


def secrets_from_environ(environ: Mapping[str, str]) -> list[str]:
    """Values of environment variables whose names look secret (``*PASSWORD*``, ``*TOKEN*``, ...)."""
    return [value for name, value in environ.items() if value and _SECRET_ENV.search(name)]
