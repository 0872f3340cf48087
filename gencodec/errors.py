"""Every error gencodec raises on purpose. All subclass :class:`GencodecError`.

The CLI turns any ``GencodecError`` into one line on stderr and exit status 1;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class GencodecError(Exception):
    """Base class of every user-facing gencodec error."""


class CorruptFileError(GencodecError):
    """The input is not a valid .gcx frame, or it is damaged or truncated."""


class UnsupportedVersionError(CorruptFileError):
    """The frame was written by a format version this gencodec cannot read."""


class UnknownCodecError(GencodecError):
    """A codec name that is not in the registry."""


class CodecUnavailableError(GencodecError):
    """The codec is known but cannot run here (a library or model is missing)."""


class UnsupportedInputError(GencodecError):
    """The codec cannot code this input (an image mode it does not support, say)."""


class ModelMismatchError(GencodecError):
    """The file was coded with a different model than the one offered for decoding."""


class ChecksumError(CorruptFileError):
    """The restored data does not match the checksum stored in the frame."""


class LimitError(GencodecError):
    """The input exceeds a configured safety limit (pixels, bytes)."""


class ExactnessError(GencodecError):
    """A model cannot be evaluated exactly (an accumulation could leave the exact range)."""


__all__ = [
    "GencodecError",
    "CorruptFileError",
    "UnsupportedVersionError",
    "UnknownCodecError",
    "CodecUnavailableError",
    "UnsupportedInputError",
    "ModelMismatchError",
    "ChecksumError",
    "LimitError",
    "ExactnessError",
]
