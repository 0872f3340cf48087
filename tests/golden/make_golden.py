"""Write the pinned .gcx frames in this folder. Run only on purpose (a changed frame format):

    python tests/golden/make_golden.py

The frames are tiny and their bytes are asserted exactly by tests/test_container.py; if this
script writes different bytes, either the frame format changed (bump ``FORMAT_VERSION`` and
document it in docs/FORMAT.md) or a codec's bitstream changed (give it a new codec name).

    hello-stored.gcx          "hello gencodec\\n" with codec stored, name hello.txt
    hello-stored-chunked.gcx  the same payload in 4-byte chunks (readers accept any chunk size)
    hello-xz.gcx              "hello gencodec\\n" with codec xz, name hello.txt
    rgb-4x3-png.gcx           the 4x3 RGB image of ``tiny_image()`` with codec png, name tiny.png
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
HELLO = b"hello gencodec\n"


def tiny_image():
    """A 4x3 RGB image whose pixel (x, y) is (40x + 10y, 255 - 40x, 7y) (uint8)."""
    from PIL import Image

    img = Image.new("RGB", (4, 3))
    img.putdata([(40 * x + 10 * y, 255 - 40 * x, 7 * y) for y in range(3) for x in range(4)])
    return img


def frames() -> dict[str, bytes]:
    """File name -> the frame's bytes, built with today's code."""
    import gencodec
    from gencodec import container

    stored = gencodec.compress(HELLO, "stored", name="hello.txt")
    header, payload = container.unpack(stored)
    return {
        "hello-stored.gcx": stored,
        "hello-stored-chunked.gcx": container.pack(header, payload, chunk_size=4),
        "hello-xz.gcx": gencodec.compress(HELLO, "xz", name="hello.txt"),
        "rgb-4x3-png.gcx": gencodec.compress(tiny_image(), "png", name="tiny.png"),
    }


def main() -> None:
    for name, blob in frames().items():
        (HERE / name).write_bytes(blob)
        print(f"{name}: {len(blob)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
