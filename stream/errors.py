"""The error base shared by every package: a message a user can act on."""

from __future__ import annotations


class LiveTagError(Exception):
    """An expected failure with a one-line message that says what is wrong and what to do.

    The CLI prints ``str(error)`` on one line and exits non-zero, without a traceback.
    Subclasses live next to the code that raises them.
    """


class SourceOpenError(LiveTagError):
    """A video source could not be opened (or reopened) within the configured retries."""


class DecodeError(LiveTagError):
    """A compressed frame could not be decoded; the decoder for its stream was reset."""


class SamplingSpecError(LiveTagError):
    """A sampling specification string is malformed."""


class EncodeError(LiveTagError):
    """Frames could not be encoded or pushed to an output."""
