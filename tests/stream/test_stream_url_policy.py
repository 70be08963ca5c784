"""Source URLs a streams record may name: every bad scheme and host is refused with a clear reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.source import PROTOCOL_WHITELIST
from stream.url_policy import SourcePolicyError, UrlPolicy


@pytest.mark.parametrize(
    "url",
    ["rtmp://ingest.example/live/abc", "rtmps://ingest.example:443/live/abc?token=x", "rtsp://10.0.0.7:554/cam",
     "srt://ingest.example:9000?streamid=abc", "https://cdn.example/live/x.m3u8", "http://192.168.1.20/live.m3u8"],
)
def test_live_urls_pass(url: str) -> None:
    assert UrlPolicy().check(url) == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("concat:/etc/passwd|/etc/hosts", "FFmpeg protocol 'concat'"),
        ("subfile:,,start,0,end,0,,:/etc/passwd", "FFmpeg protocol 'subfile'"),
        ("data:text/plain;base64,aGk=", "FFmpeg protocol 'data'"),
        ("/etc/passwd", "local files are not allowed"),
        ("file:///etc/passwd", "local files are not allowed"),
        ("tcp://203.0.113.5:9", "scheme 'tcp' is not allowed"),
        ("udp://203.0.113.5:9", "scheme 'udp' is not allowed"),
        ("gopher://example/x", "scheme 'gopher' is not allowed"),
        ("http://127.0.0.1:8080/", "loopback"),
        ("http://localhost/", "loopback"),
        ("rtmp://[::1]/live/x", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "loopback, link-local"),
        ("http://0x7f000001/", "loopback"),
        ("http://2130706433/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("rtmp://0.0.0.0/live/x", "loopback"),
        ("rtmp:///live/x", "no host"),
        ("rtmp://user:pa/ss@localhost/live/x", "ambiguous user-info"),
        ("http://example.com/redirect@127.0.0.1/", "ambiguous user-info"),
        ("rtmp://h/live/a b", "without spaces"),
        ("rtmp://h/live/\x00", "control characters"),
        ("rtmp://h/" + "x" * 3000, "1-2048 characters"),
    ],
)
def test_bad_urls_are_refused_with_the_rule(url: str, reason: str) -> None:
    with pytest.raises(SourcePolicyError, match=reason) as caught:
        UrlPolicy().check(url)
    assert "refused" not in str(caught.value) and "timed out" not in str(caught.value)  # no network state


def test_files_only_inside_allowed_folders(tmp_path: Path) -> None:
    inside = tmp_path / "clips" / "a.mp4"
    inside.parent.mkdir()
    inside.write_bytes(b"x")
    (tmp_path / "escape").symlink_to("/etc/passwd")
    policy = UrlPolicy(file_roots=(str(tmp_path / "clips"),), allow_loopback=True)
    assert policy.check(str(inside)) == str(inside.resolve())
    assert policy.check(f"file://{inside}") == str(inside.resolve())
    for outside in (str(tmp_path / "clips" / ".." / "escape"), "/etc/passwd", str(tmp_path / "escape")):
        with pytest.raises(SourcePolicyError, match="outside the allowed folders"):
            policy.check(outside)
    assert policy.check("rtmp://127.0.0.1:1935/live/x")  # loopback allowed by the option


def test_every_live_scheme_has_a_protocol_whitelist() -> None:
    for scheme in UrlPolicy().schemes:
        assert "file" not in PROTOCOL_WHITELIST[scheme].split(",")
