"""Which source URLs a ``streams`` record may name: records are data, never a way to read local
files or to probe internal hosts.

A :class:`UrlPolicy` accepts ``scheme://host/...`` URLs of the allowed schemes (by default the live
protocols: rtmp, rtmps, rtsp, rtsps, srt, and http/https for HLS) and refuses, with one clear reason:

* FFmpeg's pseudo-protocols and plain paths (``concat:``, ``subfile:``, ``file:``, ``/etc/passwd``,
  ``data:``, ...) unless ``file_roots`` names folders a path must lie in (after resolving links);
* hosts on the loopback, link-local (cloud metadata), unspecified or multicast addresses, given as
  literals or as ``localhost``, unless ``allow_loopback`` (tests and a local ingest point); private
  networks are allowed: ingest points inside a cluster live there;
* URLs with whitespace or control characters, or longer than ``MAX_URL_CHARS``.

The check is on the text only (no DNS lookup): a hostname that resolves to a loopback address is not
caught here; the FFmpeg protocol whitelist that :mod:`stream.source` sets per scheme keeps such a URL
to its own protocol.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from stream.errors import LiveTagError

LIVE_URL_SCHEMES = ("rtmp", "rtmps", "rtsp", "rtsps", "srt", "http", "https")
MAX_URL_CHARS = 2048


class SourcePolicyError(LiveTagError):
    """A source URL is not allowed (scheme, host or path); the message names the rule, not the host's state."""


@dataclass(frozen=True)
class UrlPolicy:
    """What source URLs are allowed (see the module docstring).

    Attributes:
        schemes: Allowed URL schemes (lower case).
        file_roots: Folders local files may be read from; empty: no local files.
        allow_loopback: Allow loopback, link-local, unspecified and multicast hosts.
    """

    schemes: tuple[str, ...] = LIVE_URL_SCHEMES
    file_roots: tuple[str, ...] = ()
    allow_loopback: bool = False

    def check(self, url: str) -> str:
        """Return ``url`` when it is allowed; raise SourcePolicyError naming the rule otherwise."""
        if not url or len(url) > MAX_URL_CHARS or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
            raise SourcePolicyError(f"source URL must be 1-{MAX_URL_CHARS} characters without spaces or control characters")
        head, sep, _ = url.partition("://")
        if not sep or head.lower() == "file":
            return self._check_file(url[len("file://"):] if sep else url)
        scheme = head.lower()
        if scheme not in self.schemes:
            raise SourcePolicyError(f"source URL scheme {scheme[:16]!r} is not allowed; use one of {', '.join(self.schemes)}")
        rest = url[len(head) + 3 :]
        if "@" in rest and "/" in rest[: rest.rfind("@")]:
            # "user:pa/ss@host/x": parsers disagree on the host (the netloc ends at the first "/"),
            # so a check of one reading can be bypassed by another; a real password percent-encodes "/".
            raise SourcePolicyError("source URL has '/' before its last '@' (ambiguous user-info); percent-encode it")
        try:
            host = urlsplit(url).hostname or ""
        except ValueError as exc:
            raise SourcePolicyError(f"source URL does not parse: {exc}") from None
        if not host:
            raise SourcePolicyError("source URL has no host")
        if not self.allow_loopback and _internal(host):
            raise SourcePolicyError("source URL names a loopback, link-local or multicast host; not allowed for streams")
        return url

    def _check_file(self, path: str) -> str:
        head = path.split(":", 1)[0]
        if ":" in path and not Path(path).is_absolute() and head.isalpha() and len(head) > 1:
            raise SourcePolicyError(f"FFmpeg protocol {head[:16]!r}: is not allowed; use a {'/'.join(self.schemes)} URL")
        if not self.file_roots:
            raise SourcePolicyError("local files are not allowed as stream sources; use a live URL")
        resolved = Path(path).resolve()
        for root in self.file_roots:
            if resolved.is_relative_to(Path(root).resolve()):
                return str(resolved)
        raise SourcePolicyError("local file lies outside the allowed folders (ingest file_roots)")


def _internal(host: str) -> bool:
    """True for loopback, link-local, unspecified or multicast literals, and for localhost names."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(name)
    except ValueError:
        try:  # the forms inet_aton also takes: 0x7f000001, 2130706433, 127.1, 0177.0.0.1
            address = ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_link_local or address.is_unspecified or address.is_multicast
