"""``sparse-transformer``: lossless images coded with the exact Sparse Transformer model.

The model (:mod:`gencodec.models.sparse_transformer`) is pixelcnn's trunk and heads with
factorized attention blocks between them, so this codec is pixelcnn's with another model: the same
payload, modes, per-image adaptation (head refits, scale remap, online histograms) and wavefront
decoding (:class:`~gencodec.codecs.pixelcnn.PixelCNNCodec`); only the tables differ.
"""

from __future__ import annotations

from .pixelcnn import PixelCNNCodec


class SparseTransformerCodec(PixelCNNCodec):
    name = "sparse-transformer"
    arch = "sparse-transformer"
    frame_modes = PixelCNNCodec.modes  # no frames of earlier versions to read
    description = ("Sparse Transformer (row and column attention over pixelcnn's trunk), integer-exact, "
                   "wavefront decoding (L, LA, RGB, RGBA)")
    max_pixels_reason = " that sparse-transformer decodes by default (about 6x10^4 pixels a second on one core)"

    def encode_planes(self, planes, n_coded, adapt=True, hist=None, fit=None):
        try:
            return super().encode_planes(planes, n_coded, adapt=adapt, hist=hist, fit=fit)
        finally:
            self.model.release()  # the image's kept attention output (ExactSparseTransformer.hidden_rows)
