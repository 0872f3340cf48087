"""Entropy coding: integer frequency tables -> bytes -> symbols. The only package importing constriction.

Example::

    from gencodec.coding import RangeEncoder, RangeDecoder
    enc = RangeEncoder(); enc.encode(symbols, freqs); payload = enc.finish()
    symbols_again = RangeDecoder(payload).decode(freqs)

See :mod:`gencodec.coding.range_coder` for the contract (tables: (N, K) integers >= 1).
"""

from .range_coder import RangeDecoder, RangeEncoder, check_freqs, decode, encode, ideal_bits

__all__ = ["RangeEncoder", "RangeDecoder", "ideal_bits", "check_freqs", "encode", "decode"]
