"""``NeuralCodec``: the base of every codec whose tables come from an exact model.

A new neural codec is a small subclass plus one registry line (docs/ARCHITECTURE.md walks through
one)::

    class MyCodec(NeuralCodec):
        name, kind, arch = "my-codec", "bytes", "my-model"     # arch: the model's name in the zoo
        def to_symbols(self, data): ...                       # input -> symbols the model codes
        def symbol_shape(self, header): ...                   # their shape, from the frame header
        def from_symbols(self, symbols, header): ...          # symbols -> the restored input

The base class finds the model through the zoo (the shipped default, a user's ``model=PATH``, or
an archived shipped model for an older file, by model id), refuses frames written with another
model, and codes through the one driver (:mod:`gencodec.exact.driver`) with the codec's hooks.
Codecs with their own payload layout (pixelcnn) override :meth:`encode` / :meth:`decode` and keep
the rest.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..codec import Codec, Encoded
from ..errors import ModelMismatchError
from ..models import zoo

if TYPE_CHECKING:  # the exact core imports torch: only when coding, so listing codecs stays fast
    import numpy as np

    from ..exact.contract import Hook


class NeuralCodec(Codec):
    arch: ClassVar[str]  # the model class's name in the zoo (gencodec.models.zoo)
    requires: ClassVar[tuple[str, ...]] = ("torch", "constriction")  # modules the codec needs to run

    def __init__(self, model: str | Path | None = None):
        self._user_path = Path(model) if model is not None else None
        self._model = None
        self._archived: dict[bytes, NeuralCodec] = {}

    # -- model ----------------------------------------------------------------------------------
    @property
    def model_path(self) -> Path | None:
        """The model file this codec codes with (None: a model class without weights)."""
        return self._user_path if self._user_path is not None else zoo.default_weights(self.arch)

    def unavailable_reason(self) -> str | None:
        path = self.model_path
        if path is not None and not path.is_file():
            return f"model file {path} not found"
        for module in self.requires:  # found, not imported: listing codecs stays fast
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed"
        return None

    @property
    def model(self):
        if self._model is None:
            self._model = zoo.load(self._user_path, self.arch) if self._user_path is not None else zoo.default_model(self.arch)
        return self._model

    @property
    def model_id(self) -> bytes:
        return self.model.model_id

    def for_model_id(self, model_id: bytes) -> "NeuralCodec | None":
        if model_id == self.model_id:
            return self
        if self._user_path is not None or not model_id:  # a user's model: no substitutes
            return None
        if model_id not in self._archived:
            path = zoo.archived(self.arch, model_id)
            if path is None:
                return None
            codec = type(self)(model=path)
            if codec.model_id != model_id:  # pragma: no cover - a misnamed archive file
                return None
            self._archived[model_id] = codec
        return self._archived[model_id]

    def model_origin(self, model_id: bytes) -> str | None:
        """Where the package keeps the model with this id (``zoo.origin``), without loading it."""
        return zoo.origin(self.arch, model_id)

    def model_elsewhere(self, model_id: bytes) -> str | None:
        """For a model gencodec shipped that this installation lacks: where it is kept and how to get
        it (one clause); None otherwise."""
        if zoo.origin(self.arch, model_id) != "archive-package":
            return None
        return f"an earlier shipped model kept in gencodec-archive, which is not installed: {zoo.INSTALL_ARCHIVE}"

    def check_model(self, header: Any) -> None:
        """ModelMismatchError unless the frame was written with this codec's model (or with none)."""
        if header.model_id and header.model_id != self.model_id:
            raise ModelMismatchError(
                f"this file was coded with {self.name} model {header.model_id.hex()}, but the model offered "
                f"({self.model_path}) is {self.model_id.hex()}; decode with --model pointing at the model that wrote it"
            )

    # -- what a subclass says -------------------------------------------------------------------
    def to_symbols(self, data: Any) -> "np.ndarray":  # pragma: no cover - interface
        """The input as the symbols the model codes (the shape its schedule takes)."""
        raise NotImplementedError

    def symbol_shape(self, header: Any) -> tuple[int, ...]:  # pragma: no cover - interface
        """The symbols' shape, from the frame header (shape, mode, length)."""
        raise NotImplementedError

    def from_symbols(self, symbols: "np.ndarray", header: Any) -> Any:  # pragma: no cover - interface
        """Decoded symbols -> the restored input."""
        raise NotImplementedError

    def hooks(self, encoding: bool) -> "list[Hook]":
        """Fresh per-input adaptation hooks for one encode or decode (default: none)."""
        return []

    # -- coding ---------------------------------------------------------------------------------
    def encode(self, data: Any, **params: Any) -> Encoded:
        from ..exact import driver

        self.check_no_params(params)
        symbols = self.to_symbols(data)
        stream, ideal = driver.encode(self.model, symbols, self.hooks(encoding=True))
        stats = {"ideal_bits": ideal, "model_ideal_bits": ideal}
        return Encoded(stream, {}, stats)

    def decode(self, payload: bytes, header: Any) -> Any:
        from ..exact import driver

        self.check_model(header)
        symbols = driver.decode(self.model, self.symbol_shape(header), payload, self.hooks(encoding=False))
        return self.from_symbols(symbols, header)
