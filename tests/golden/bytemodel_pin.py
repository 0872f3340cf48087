"""The pinned bytemodel frame of the shipped model: corpora/canterbury/grammar.lsp, written in a
process with ATEN_CPU_CAPABILITY=default, one thread and SSE3 BLAS kernels, so that CI (another
instruction set, other threads) checks bits made elsewhere, both ways: it decodes this frame and
writes the very same bytes.

    ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1 OPENBLAS_CORETYPE=Prescott python tests/golden/bytemodel_pin.py

Run on purpose only, when a new shipped model replaces the last (archive the last one first, so its
frames keep decoding: gencodec/weights/archive/). grammar.lsp.gcx beside it is version 1's frame.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent.parent / "corpora" / "canterbury" / "grammar.lsp"
FRAME = HERE / "bytemodel" / "grammar.lsp-v2.gcx"

if __name__ == "__main__":
    import gencodec

    data = SOURCE.read_bytes()
    blob = gencodec.compress(data, codec="bytemodel", name="grammar.lsp")
    assert gencodec.decompress(blob) == data
    FRAME.write_bytes(blob)
    print(f"{FRAME}: {len(blob)} bytes, model {gencodec.info(blob)['model_id']}")
