"""The one registry of codecs: stable name -> where the class lives.

Entries are imported lazily so that listing codecs or reading a header never imports torch.
A name, once released, always means the same bitstream: a changed bitstream gets a new name.
To add a codec, add one ``register`` line below (and, for ``auto``, put it in a ranking); code
outside the package (a plug-in, a test) calls :func:`register` itself.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any

from .codec import Codec, CodecKind
from .errors import UnknownCodecError, UnsupportedInputError


@dataclass(frozen=True)
class CodecEntry:
    name: str
    kind: CodecKind
    target: str  # "module:Class", module relative to the gencodec package
    description: str


_ENTRIES: dict[str, CodecEntry] = {}
_INSTANCES: dict[str, Codec] = {}


def register(name: str, kind: CodecKind, target: str, description: str) -> None:
    """Register a codec class under ``name``. target: "module:Class", a module starting with "."
    being relative to the gencodec package (imported when the codec is first used)."""
    if name in _ENTRIES or name == "auto":
        raise ValueError(f"codec name {name!r} registered twice")
    _ENTRIES[name] = CodecEntry(name, kind, target, description)


def unregister(name: str) -> None:
    """Remove a codec registered with :func:`register` (plug-ins and tests)."""
    _ENTRIES.pop(name, None)
    _INSTANCES.pop(name, None)


# -- lossless images ----------------------------------------------------------------------------
register("png", "lossless-image", ".codecs.classic_image:PNGCodec", "PNG, zlib level 9 with the best filter strategy")
register("webp-lossless", "lossless-image", ".codecs.classic_image:WebPLosslessCodec", "WebP lossless, method 6, exact")
register("jpeg-xl-lossless", "lossless-image", ".codecs.classic_image:JPEGXLLosslessCodec", "JPEG XL lossless (libjxl)")
register("jpeg2000-lossless", "lossless-image", ".codecs.classic_image:JPEG2000LosslessCodec", "JPEG 2000 reversible 5/3 with RCT")
register("pixelcnn", "lossless-image", ".codecs.pixelcnn:PixelCNNCodec", "PixelCNN-family neural model, integer-exact, wavefront decoding")
register("sparse-transformer", "lossless-image", ".codecs.sparse_transformer:SparseTransformerCodec",
         "Sparse Transformer (row and column attention over pixelcnn's trunk), integer-exact, wavefront decoding")
# -- lossy images -------------------------------------------------------------------------------
register("jpeg", "lossy-image", ".codecs.classic_image:JPEGCodec", "JPEG (libjpeg-turbo), quality 1-100")
register("webp", "lossy-image", ".codecs.classic_image:WebPCodec", "WebP lossy, quality 0-100")
register("avif", "lossy-image", ".codecs.classic_image:AVIFCodec", "AVIF (libavif), quality 0-100")
register("jpeg-xl", "lossy-image", ".codecs.classic_image:JPEGXLCodec", "JPEG XL lossy (libjxl), quality 0-100")
register("hyperprior", "lossy-image", ".codecs.hyperprior:HyperpriorCodec",
         "learned: mean-scale hyperprior autoencoder, exact entropy parameters, a quality ladder, --psnr/--bpp")

#: ``--lossy``: the learned lossy codec used when none is named
DEFAULT_LEARNED_LOSSY = "hyperprior"
# -- bytes --------------------------------------------------------------------------------------
register("stored", "bytes", ".codecs.classic_bytes:StoredCodec", "no compression")
register("gzip", "bytes", ".codecs.classic_bytes:GzipCodec", "DEFLATE (zlib level 9, gzip framing)")
register("bz2", "bytes", ".codecs.classic_bytes:Bz2Codec", "bzip2, level 9")
register("xz", "bytes", ".codecs.classic_bytes:XzCodec", "xz / LZMA2, preset 9 extreme")
register("zstd", "bytes", ".codecs.classic_bytes:ZstdCodec", "Zstandard, level 19")
register("brotli", "bytes", ".codecs.classic_bytes:BrotliCodec", "Brotli, quality 11")
register("jpeg-recompress", "bytes", ".codecs.classic_bytes:JPEGRecompressCodec",
         "JPEG files recompressed by JPEG XL's lossless JPEG reconstruction (the same file restored)")
register("bytemodel", "bytes", ".codecs.bytemodel:ByteModelCodec",
         "context mixing over bits with a pretrained net as one input, learned while coding, integer-exact")

#: ``auto`` for lossless images: the first available codec here that accepts the image's mode.
#: pixelcnn leads since it coded Kodak smaller than JPEG XL at effort 7 and 9 in the same run
#: (docs/BENCHMARKS.md); modes it does not model (1, P, I;16) go on down the ranking. The rule for
#: the learned models: the smallest on Kodak among those that decode a 768x512 photo within 2 s
#: (the benchmark's mean, one core), else the fastest of them. sparse-transformer codes Kodak 0.2 %
#: smaller than pixelcnn but decodes 2.6 times slower (6.3 s against 2.4 s on the same run), so
#: pixelcnn stays; `--codec sparse-transformer` asks for it.
AUTO_IMAGE_RANKING = ["pixelcnn", "jpeg-xl-lossless", "webp-lossless", "png"]
#: neural image codecs in that ranking are skipped for images with fewer pixels than this: their
#: start-up (pixelcnn: about 2.7 s and 680 MB) buys a few bytes at most on a thumbnail
AUTO_NEURAL_MIN_PIXELS = {"pixelcnn": 64 * 64}
#: ``auto`` for bytes: all of these are tried and the smallest frame wins ("stored" always last).
AUTO_BYTES_CANDIDATES = ["xz", "brotli", "zstd", "bz2", "stored"]
#: ... and these neural byte codecs too, for inputs up to this many bytes (beyond, their time is not
#: worth it here: bytemodel codes about 100 KB/s each way, so 1 MiB takes ~10 s; ``--codec bytemodel``
#: still forces it, and the CLI says so in one line)
AUTO_NEURAL_BYTES = {"bytemodel": 1 << 20}
#: ... but not for inputs shorter than this: there loading the model costs more time than any
#: saving is worth (a few bytes at most)
AUTO_NEURAL_MIN_BYTES = 512
#: ... and for JPEG files (by their first bytes) this one first: the same file, about 15 % smaller
AUTO_JPEG = "jpeg-recompress"

def entries() -> list[CodecEntry]:
    return list(_ENTRIES.values())


def get_entry(name: str) -> CodecEntry:
    try:
        return _ENTRIES[name]
    except KeyError:
        raise UnknownCodecError(
            f"unknown codec {name!r} (known: {', '.join(_ENTRIES)})"
        ) from None


def get_codec(name: str, **options: Any) -> Codec:
    """The codec registered under ``name``; ``options`` (e.g. ``model=PATH``) build a fresh instance."""
    entry = get_entry(name)
    if not options and name in _INSTANCES:
        return _INSTANCES[name]
    module_name, cls_name = entry.target.split(":")
    module = importlib.import_module(module_name, __package__)
    cls = getattr(module, cls_name)
    if options:
        try:
            inspect.signature(cls).bind(**options)
        except TypeError:
            raise UnsupportedInputError(f"codec {name!r} takes no {', '.join(sorted(options))} option") from None
    codec = cls(**options)
    if codec.name != name:  # pragma: no cover - registry bug
        raise RuntimeError(f"registry entry {name!r} points at codec {codec.name!r}")
    if not options:
        _INSTANCES[name] = codec
    return codec


def list_codecs() -> list[dict[str, Any]]:
    """Every registered codec: name, kind, description, availability (and why not)."""
    out = []
    for e in _ENTRIES.values():
        try:
            reason = get_codec(e.name).unavailable_reason()
        except ImportError as exc:
            reason = f"cannot import: {exc}"
        try:
            codec = get_codec(e.name)  # its params may follow its shipped model (a quality ladder's length)
            params = [dict(name=p.name, kind=p.kind, default=p.default, lo=p.lo, hi=p.hi, help=p.help,
                           text=p.describe()) for p in codec.params]
            levels = {str(k): v for k, v in (codec.levels or {}).items()}
        except ImportError:
            params, levels = [], {}
        out.append(dict(name=e.name, kind=e.kind, description=e.description, available=reason is None, reason=reason,
                        params=params, levels=levels))
    return out
