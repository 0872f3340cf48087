"""Limits on what decoding may cost, checked against a frame's header before anything is allocated.

Two limits, each with a default that suits a normal machine, an environment variable and a
per-call / command-line override:

- pixels of an image frame: ``GENCODEC_MAX_PIXELS`` / ``--max-pixels`` (default 2**28 for classical
  codecs; a neural codec's own, smaller default -- what it decodes in minutes here -- applies
  unless a limit is given explicitly);
- bytes of a byte frame: ``GENCODEC_MAX_BYTES`` / ``--max-bytes`` (default 2**30; a codec may
  have a smaller hard limit of its own, e.g. bytemodel's 16 MiB).

A bad value (not a positive integer) is a :class:`~gencodec.errors.LimitError` naming the variable.
"""

from __future__ import annotations

import os

from .errors import LimitError

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_MAX_BYTES", "max_pixels", "max_bytes", "parse_limit"]

DEFAULT_MAX_PIXELS = 1 << 28
DEFAULT_MAX_BYTES = 1 << 30


def parse_limit(text: str, what: str) -> int:
    """A limit's text -> a positive integer (suffixes K, M, G, T for powers of 1024 accepted)."""
    t = text.strip().upper()
    factor = 1
    for suffix, f in (("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("T", 1 << 40)):
        if t.endswith(suffix):
            t, factor = t[:-1], f
            break
    if not t.isdigit() or int(t) < 1:
        raise LimitError(f"{what} must be a positive integer (optionally with K, M or G), not {text!r}")
    return int(t) * factor


def _from_env(var: str) -> int | None:
    text = os.environ.get(var)
    return parse_limit(text, var) if text else None


def max_pixels(explicit: int | None = None, codec_default: int | None = None) -> tuple[int, str]:
    """(the pixel limit, how to raise it): ``explicit`` (a call's or option's value), else
    GENCODEC_MAX_PIXELS, else the smaller of the codec's own default and DEFAULT_MAX_PIXELS."""
    if explicit is not None:
        if isinstance(explicit, bool) or not isinstance(explicit, int) or explicit < 1:
            raise LimitError(f"max_pixels must be a positive integer, not {explicit!r}")
        return explicit, "raise it with --max-pixels or GENCODEC_MAX_PIXELS"
    env = _from_env("GENCODEC_MAX_PIXELS")
    if env is not None:
        return env, "raise it with --max-pixels or GENCODEC_MAX_PIXELS"
    limit = min(DEFAULT_MAX_PIXELS, codec_default or DEFAULT_MAX_PIXELS)
    return limit, "raise it with --max-pixels or GENCODEC_MAX_PIXELS"


def max_bytes(explicit: int | None = None) -> int:
    """The byte limit: ``explicit``, else GENCODEC_MAX_BYTES, else DEFAULT_MAX_BYTES."""
    if explicit is not None:
        if isinstance(explicit, bool) or not isinstance(explicit, int) or explicit < 1:
            raise LimitError(f"max_bytes must be a positive integer, not {explicit!r}")
        return explicit
    env = _from_env("GENCODEC_MAX_BYTES")
    return env if env is not None else DEFAULT_MAX_BYTES
