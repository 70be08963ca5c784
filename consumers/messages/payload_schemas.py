"""JSON Schemas of every topic's payload and headers (``consumers/messages/schemas``), and their check.

=================  ====================================  =========================================
topic              schema                                what is checked
=================  ====================================  =========================================
streams            ``stream_record.v2.json``             the JSON value (v1 and v2)
frames             ``frame_headers.v2.json``             the headers (v1 and v2, :func:`headers_document`)
gallery            ``gallery_record.v1.json``            the JSON value
matches            ``match_event.v1.json`` / ``v2``      the JSON value (``consumers.messages.match_event``)
dlq                ``dead_letter_headers.v1.json``       the ``lt-dlq-*`` headers
transcripts        ``transcript_record.v1.json``         the JSON value
segments           ``segment_state.v1.json``             the JSON value (a tombstone has none)
=================  ====================================  =========================================
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from typing import Any

from stream.errors import LiveTagError

SCHEMAS = {
    "streams": "stream_record.v2.json",
    "frames": "frame_headers.v2.json",
    "gallery": "gallery_record.v1.json",
    "matches.v1": "match_event.v1.json",
    "matches.v2": "match_event.v2.json",
    "dlq": "dead_letter_headers.v1.json",
    "transcripts": "transcript_record.v1.json",
    "segments": "segment_state.v1.json",
}


class PayloadSchemaError(LiveTagError):
    """A document does not follow its topic's schema; the message names the place."""


@lru_cache(maxsize=len(SCHEMAS))
def _validator(name: str) -> Any:
    import jsonschema

    text = resources.files("consumers.messages").joinpath("schemas", SCHEMAS[name]).read_text(encoding="utf-8")
    return jsonschema.Draft202012Validator(json.loads(text))


def headers_document(headers: Sequence[tuple[str, bytes | None]]) -> dict[str, Any]:
    """Record headers as a JSON document: UTF-8 text by name (the first of repeated names), except
    ``extradata``, which is binary and given as its length."""
    out: dict[str, Any] = {}
    for name, raw in headers:
        if name in out:
            continue
        value = raw or b""
        out[name] = len(value) if name == "extradata" else value.decode("utf-8", "replace")
    return out


def check_payload(name: str, document: Any) -> None:
    """Raise PayloadSchemaError unless ``document`` follows schema ``name`` (a key of :data:`SCHEMAS`)."""
    from jsonschema.exceptions import best_match

    error = best_match(_validator(name).iter_errors(document))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise PayloadSchemaError(f"{name} document at {where}: {error.message}")
