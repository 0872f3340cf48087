"""The one interface every codec implements, classical or neural.

A codec turns one input into a payload and back. It never sees the .gcx frame: ``gencodec.api``
wraps the payload with a header (codec name, stored params, model id, shape, checksum) and
verifies the checksum of what a codec restores. Image codecs take and return PIL images; byte
codecs take and return ``bytes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from .errors import UnsupportedInputError

CodecKind = Literal["lossless-image", "lossy-image", "bytes"]


@dataclass(frozen=True)
class Param:
    """One encoder parameter a codec takes: shown by ``gencodec codecs`` and checked by :meth:`Codec.take_params`.

    kind: "int", "float" or "bool"; lo/hi: the inclusive range of numbers."""

    name: str
    kind: str
    default: Any
    lo: float | None = None
    hi: float | None = None
    help: str = ""

    def describe(self) -> str:
        rng = "true/false" if self.kind == "bool" else f"{self.lo:g}-{self.hi:g}"
        return f"{self.name} {rng}" + (f" (default {self.default})" if self.default is not None else " (optional)")

    def check(self, codec_name: str, value: Any) -> Any:
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise UnsupportedInputError(f"codec {codec_name!r}: {self.name} must be true or false, not {value!r}")
            return value
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (self.kind == "float" or
                                                                                 isinstance(value, int))
        if not ok or not (self.lo <= value <= self.hi):
            what = "an integer" if self.kind == "int" else "a number"
            raise UnsupportedInputError(f"codec {codec_name!r}: {self.name} must be {what} from {self.lo:g} to "
                                        f"{self.hi:g}, not {value!r}")
        return value


@dataclass
class Encoded:
    """What ``Codec.encode`` returns.

    payload: the coded bytes. params: what the decoder needs besides the header's shape and mode
    (stored in the header as JSON; keep it small). stats: numbers for reports that are not stored,
    e.g. ``ideal_bits`` (the model's code length, -sum log2 p, for codecs with a model).
    uses_model: False when this payload decodes without the codec's model (e.g. a fallback path);
    the frame then records no model id, so any model -- or none -- decodes it.
    """

    payload: bytes
    params: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    uses_model: bool = True


class Codec:
    """Base class. Subclasses set the class attributes and implement encode/decode.

    name:        stable kebab-case name, written into every file; never reused for another bitstream
    kind:        "lossless-image", "lossy-image" or "bytes"
    modes:       image modes accepted (image codecs); others raise UnsupportedInputError
    auto_modes:  modes ``auto`` may give this codec (default: ``modes``); a codec that accepts a mode
                 only to hand it to another codec leaves it out
    description: one line for ``gencodec codecs``
    """

    name: ClassVar[str]
    kind: ClassVar[CodecKind]
    description: ClassVar[str] = ""
    modes: ClassVar[frozenset[str]] = frozenset()
    auto_modes: ClassVar[frozenset[str] | None] = None
    #: the encoder parameters the codec takes (``gencodec codecs`` lists them)
    params: ClassVar[tuple[Param, ...]] = ()
    #: ``-1`` ... ``-9`` (faster ... smaller): the parameters each level means for this codec, or None
    levels: ClassVar[dict[int, dict[str, Any]] | None] = None
    #: the file suffix of the payload's own format (``decompress --native``), or None (no such format)
    native_suffix: ClassVar[str | None] = None

    # -- availability ---------------------------------------------------------------------------
    def unavailable_reason(self) -> str | None:
        """None when the codec can run here, else a short reason (a missing library, say)."""
        return None

    @property
    def available(self) -> bool:
        return self.unavailable_reason() is None

    # -- model ----------------------------------------------------------------------------------
    @property
    def model_id(self) -> bytes:
        """Identity of the model the codec codes with (a hash of its weights); b"" for none."""
        return b""

    def for_model_id(self, model_id: bytes) -> "Codec | None":
        """A codec that decodes frames written with model ``model_id``: this one if its model is that
        model, a codec with an earlier shipped model the package keeps for old files, or None."""
        return self if model_id == self.model_id else None

    # -- coding ---------------------------------------------------------------------------------
    def encode(self, data: Any, **params: Any) -> Encoded:  # pragma: no cover - interface
        raise NotImplementedError

    def decode(self, payload: bytes, header: Any) -> Any:  # pragma: no cover - interface
        """Restore the data from ``payload``; ``header`` is the frame's :class:`~gencodec.container.Header`."""
        raise NotImplementedError

    def native_payload(self, payload: bytes, header: Any) -> bytes:
        """The payload as a file of its own format (:attr:`native_suffix`), for other tools."""
        if self.native_suffix is None:
            raise UnsupportedInputError(f"codec {self.name!r} has no format of its own outside .gcx files")
        return payload

    # -- helpers --------------------------------------------------------------------------------
    def check_mode(self, img: Any) -> None:
        if img.mode not in self.modes:
            raise UnsupportedInputError(
                f"codec {self.name!r} cannot code image mode {img.mode!r} "
                f"(it codes {', '.join(sorted(self.modes))})"
            )

    def take_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """The declared :attr:`params` with their defaults, updated from ``params`` (checked);
        UnsupportedInputError for an unknown name or a bad value."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(params) - set(known))
        if unknown:
            if not known:
                self.check_no_params(params)
            raise UnsupportedInputError(f"codec {self.name!r} takes {', '.join(known)}, not {', '.join(unknown)}")
        return {k: (p.check(self.name, params[k]) if k in params else p.default) for k, p in known.items()}

    def level_params(self, level: int) -> dict[str, Any]:
        """What ``-LEVEL`` means for this codec (UnsupportedInputError if it has no levels)."""
        if not self.levels:
            raise UnsupportedInputError(f"codec {self.name!r} has no speed/size levels")
        if level not in self.levels:
            raise UnsupportedInputError(f"level {level!r}: levels are 1 to 9")
        return dict(self.levels[level])

    def check_no_params(self, params: dict[str, Any]) -> None:
        """For codecs without options: refuse any, naming them."""
        if params:
            raise UnsupportedInputError(f"codec {self.name!r} takes no parameters (got {', '.join(sorted(params))})")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} ({self.kind})>"
