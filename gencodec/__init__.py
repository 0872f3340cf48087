"""gencodec: learned compression with exact decoding, beside the classical codecs.

Public API::

    blob = gencodec.compress(data, codec="auto")   # bytes, path, PIL image or uint8 array
    data = gencodec.decompress(blob)               # bytes or PIL image, checksum verified
    gencodec.info(blob)                            # the header as a dict
    gencodec.get_codec("xz"); gencodec.list_codecs()
    with gencodec.progress.reporting(callback): ...   # callback(done, total) from slow codecs
"""

from . import progress
from .api import compress, compress_report, decompress, info
from .errors import *  # noqa: F401,F403
from .errors import __all__ as _errors_all
from .registry import get_codec, list_codecs

__version__ = "0.1.0"

__all__ = ["compress", "compress_report", "decompress", "info", "get_codec", "list_codecs", "progress", "__version__",
           *_errors_all]
