"""Classical codecs through the one-shot API: lossless images keep pixels and mode exactly, byte
codecs restore every byte, lossy codecs keep size and mode at a sane quality."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import gencodec
from gencodec import container
from gencodec.errors import CorruptFileError, GencodecError, UnsupportedInputError
from gencodec.imageio import pixel_digest

from conftest import ALL_MODES, SYNTHETIC_KINDS, SYNTHETIC_SIZES

LOSSLESS = ("png", "webp-lossless", "jpeg-xl-lossless", "jpeg2000-lossless")
LOSSY = ("jpeg", "webp", "avif", "jpeg-xl")
BYTE_CODECS = ("stored", "gzip", "bz2", "xz", "zstd", "brotli")
#: What each lossless codec claims; everything else must be refused.
CLAIMED_MODES = {
    "png": set(ALL_MODES),
    "webp-lossless": set(ALL_MODES) - {"I;16"},
    "jpeg-xl-lossless": set(ALL_MODES),
    "jpeg2000-lossless": set(ALL_MODES),
}
#: Small Canterbury files, one test each; the whole corpus (about 7 s in all, brotli 4 s) runs per codec.
CANTERBURY_FAST = ("alice29.txt", "cp.html", "fields.c", "grammar.lsp", "sum", "xargs.1")
CANTERBURY_ALL = CANTERBURY_FAST + ("asyoulik.txt", "kennedy.xls", "lcet10.txt", "plrabn12.txt", "ptt5")


def roundtrip(img: Image.Image, codec: str, **params) -> tuple[bytes, Image.Image]:
    blob = gencodec.compress(img, codec=codec, **params)
    return blob, gencodec.decompress(blob)


def assert_same_image(out: Image.Image, img: Image.Image) -> None:
    assert out.mode == img.mode
    assert out.size == img.size
    assert out.tobytes() == img.tobytes()
    if img.mode == "P":
        assert out.palette.mode == img.palette.mode
        assert out.getpalette(rawmode=img.palette.mode) == img.getpalette(rawmode=img.palette.mode)
        assert out.info.get("transparency") == img.info.get("transparency")
    assert pixel_digest(out) == pixel_digest(img)


def psnr_db(a: Image.Image, b: Image.Image) -> float:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


# ---------------------------------------------------------------------------------------------
# lossless images


@pytest.mark.parametrize("codec", LOSSLESS)
def test_lossless_claims_exactly_the_expected_modes(codec):
    assert set(gencodec.get_codec(codec).modes) == CLAIMED_MODES[codec]
    assert gencodec.get_codec(codec).available


@pytest.mark.parametrize("codec", LOSSLESS)
def test_lossless_kodak_crop_round_trips_and_compresses(codec, kodak_crop):
    img = kodak_crop("kodim23")
    blob, out = roundtrip(img, codec)
    assert_same_image(out, img)
    assert gencodec.info(blob)["codec"] == codec
    assert len(blob) < 0.8 * len(img.tobytes())  # a photo compresses


@pytest.mark.parametrize("codec", LOSSLESS)
@pytest.mark.parametrize("mode", ALL_MODES)
def test_lossless_synthetic_every_mode(codec, mode, synthetic):
    if mode not in CLAIMED_MODES[codec]:
        img = synthetic(mode, "noise", (5, 3))
        with pytest.raises(UnsupportedInputError, match=re_escape(mode)):
            gencodec.compress(img, codec=codec)
        return
    for kind in SYNTHETIC_KINDS:
        for size in SYNTHETIC_SIZES:
            img = synthetic(mode, kind, size)
            _, out = roundtrip(img, codec)
            assert_same_image(out, img)


def re_escape(text: str) -> str:
    import re

    return re.escape(repr(text))


@pytest.mark.parametrize("codec", LOSSLESS)
def test_lossless_palette_variants(codec, synthetic):
    """RGB palettes, short palettes, and a single transparent index survive."""
    base = synthetic("L", "gradient", (19, 7))
    short = Image.frombytes("P", base.size, bytes(v % 4 for v in base.tobytes()))
    short.putpalette(bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9]), rawmode="RGB")
    keyed = short.copy()
    keyed.info["transparency"] = 2
    quantized = Image.merge("RGB", (base, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT), base)).quantize(8)
    for img in (short, keyed, quantized):
        _, out = roundtrip(img, codec)
        assert_same_image(out, img)


@pytest.mark.parametrize("codec", LOSSLESS)
def test_lossless_keeps_rgb_under_zero_alpha(codec):
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., :3] = np.arange(72, dtype=np.uint8).reshape(4, 6, 3) * 3
    rgba[..., 3] = np.array([0, 255, 0, 128, 0, 1], np.uint8)
    img = Image.fromarray(rgba, "RGBA")
    _, out = roundtrip(img, codec)
    assert_same_image(out, img)


@pytest.mark.parametrize("codec", LOSSLESS + LOSSY)
def test_encoding_is_deterministic_and_ignores_metadata(codec, kodak_crop):
    img = kodak_crop("kodim07", (100, 100, 164, 148))
    tagged = img.copy()
    tagged.info.update(dpi=(300, 300), gamma=0.45, comment=b"not pixels")
    first = gencodec.compress(img, codec=codec)
    assert gencodec.compress(img, codec=codec) == first
    assert gencodec.compress(tagged, codec=codec) == first


@pytest.mark.parametrize("codec", LOSSLESS)
def test_palette_png_file_round_trips_from_path(codec, tmp_path, kodak_crop):
    """A P image as Pillow reads it back from a PNG file (RGB palette, tRNS table)."""
    path = tmp_path / "pal.png"
    kodak_crop().quantize(64).save(path, transparency=bytes(range(0, 256, 4)))
    with Image.open(path) as reread:
        reread.load()
        expected = reread.copy()
        expected.info = dict(reread.info)
    assert isinstance(expected.info["transparency"], bytes)
    out = gencodec.decompress(gencodec.compress(path, codec=codec))
    assert_same_image(out, expected)


def test_16_bit_png_file_round_trips_from_path(tmp_path, kodak_crop):
    deep = Image.fromarray(np.asarray(kodak_crop().convert("L"), np.uint16) * 257 + 3)
    deep.save(tmp_path / "deep.png")
    blob = gencodec.compress(tmp_path / "deep.png")
    assert gencodec.info(blob)["mode"] == "I;16" and gencodec.info(blob)["bit_depth"] == 16
    assert_same_image(gencodec.decompress(blob), deep)


def test_jpeg_xl_lossless_effort_changes_only_size(kodak_crop):
    img = kodak_crop()
    fast, out_fast = roundtrip(img, "jpeg-xl-lossless", effort=1)
    slow, out_slow = roundtrip(img, "jpeg-xl-lossless", effort=9)
    assert_same_image(out_fast, img)
    assert_same_image(out_slow, img)
    assert len(slow) < len(fast)
    assert gencodec.info(slow)["params"] == {}  # effort is not needed to decode


@pytest.mark.parametrize(
    "codec, params, message",
    [
        ("jpeg-xl-lossless", {"effort": 0}, "effort must be an integer from 1 to 9"),
        ("jpeg-xl-lossless", {"effort": "max"}, "effort must be an integer from 1 to 9"),
        ("png", {"quality": 80}, "takes no parameters"),
        ("jpeg", {"quality": 101}, "quality must be an integer from 1 to 100"),
        ("jpeg", {"quality": 0}, "quality must be an integer from 1 to 100"),
        ("avif", {"quality": 50.5}, "quality must be an integer from 0 to 100"),
        ("webp", {"quality": 80, "speed": 3}, "takes no parameters"),
    ],
)
def test_bad_parameters_are_refused_with_one_line(codec, params, message, kodak_crop):
    with pytest.raises(UnsupportedInputError, match=message) as err:
        gencodec.compress(kodak_crop(), codec=codec, **params)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("codec", LOSSLESS + LOSSY)
def test_modes_no_frame_describes_are_refused(codec):
    with pytest.raises(UnsupportedInputError, match="'CMYK'"):
        gencodec.compress(Image.new("CMYK", (4, 4)), codec=codec)


@pytest.mark.parametrize("codec", LOSSLESS + LOSSY)
def test_garbage_payload_is_a_corrupt_file(codec, kodak_crop):
    """A payload that passes its CRC but is not a valid bitstream fails with CorruptFileError."""
    header, _ = container.unpack(gencodec.compress(kodak_crop(), codec=codec))
    if header.kind == "image" and codec in LOSSY:
        header = header.__class__(**{**header.__dict__, "checksum": container.checksum(b"\x00garbage" * 8)})
    with pytest.raises(CorruptFileError):
        gencodec.decompress(container.pack(header, b"\x00garbage" * 8))


@pytest.mark.parametrize("codec", LOSSLESS)
def test_header_size_that_disagrees_with_payload_is_refused(codec, kodak_crop):
    header, payload = container.unpack(gencodec.compress(kodak_crop(), codec=codec))
    lying = header.__class__(**{**header.__dict__, "width": header.width + 1})
    with pytest.raises(CorruptFileError):
        gencodec.decompress(container.pack(lying, payload))


# ---------------------------------------------------------------------------------------------
# lossy images


@pytest.mark.parametrize("codec", LOSSY)
@pytest.mark.parametrize("mode", ("RGB", "L"))
def test_lossy_quality_size_mode_and_psnr(codec, mode, kodak_crop):
    img = kodak_crop("kodim23").convert(mode)
    high, out_high = roundtrip(img, codec, quality=90)
    low, out_low = roundtrip(img, codec, quality=30)
    for out in (out_high, out_low):
        assert out.mode == mode and out.size == img.size
    assert gencodec.info(high)["params"] == {"quality": 90}
    assert psnr_db(out_high, img) > 35.0
    assert psnr_db(out_low, img) < psnr_db(out_high, img)
    assert len(low) < len(high) < len(img.tobytes())


@pytest.mark.parametrize("codec", LOSSY)
@pytest.mark.parametrize("size", SYNTHETIC_SIZES)
def test_lossy_odd_sizes_keep_size(codec, size, synthetic):
    img = synthetic("RGB", "gradient", size)
    blob, out = roundtrip(img, codec)
    assert gencodec.info(blob)["params"] == {"quality": 75}  # the default
    assert out.mode == "RGB" and out.size == size


@pytest.mark.parametrize("codec", LOSSY)
@pytest.mark.parametrize("mode", sorted(set(ALL_MODES) - {"L", "RGB"}))
def test_lossy_refuses_other_modes_by_name(codec, mode, synthetic):
    if mode in ("LA", "RGBA") and codec in ("webp", "avif", "jpeg-xl"):
        pytest.skip(f"{codec} codes {mode} (alpha exact): test_lossy_codecs_keep_alpha_exact")
    with pytest.raises(UnsupportedInputError, match=re_escape(mode)):
        gencodec.compress(synthetic(mode, "noise", (8, 8)), codec=codec)


# ---------------------------------------------------------------------------------------------
# bytes


@pytest.mark.parametrize("codec", BYTE_CODECS)
@pytest.mark.parametrize("data", [b"", b"\x00", b"a" * 1000, bytes(range(256)) * 3], ids=["empty", "1-byte", "run", "ramp"])
def test_byte_codecs_edge_inputs(codec, data):
    blob = gencodec.compress(data, codec=codec)
    out = gencodec.decompress(blob)
    assert isinstance(out, bytes) and out == data
    assert gencodec.info(blob)["length"] == len(data)


@pytest.mark.parametrize("codec", BYTE_CODECS)
@pytest.mark.parametrize("name", CANTERBURY_FAST)
def test_byte_codecs_canterbury_small_files(codec, name, canterbury_dir):
    data = (canterbury_dir / name).read_bytes()
    blob = gencodec.compress(data, codec=codec)
    assert gencodec.decompress(blob) == data
    if codec != "stored":
        assert len(blob) < len(data)


@pytest.mark.parametrize("codec", BYTE_CODECS)
def test_byte_codecs_whole_canterbury(codec, canterbury_dir):
    for name in CANTERBURY_ALL:
        data = (canterbury_dir / name).read_bytes()
        blob = gencodec.compress(canterbury_dir / name, codec=codec)
        assert gencodec.decompress(blob) == data, name
        assert gencodec.info(blob)["name"] == name


@pytest.mark.parametrize("codec", BYTE_CODECS)
def test_damaged_byte_payload_is_reported(codec, canterbury_dir):
    blob = bytearray(gencodec.compress((canterbury_dir / "grammar.lsp").read_bytes(), codec=codec))
    blob[-10] ^= 0x40  # inside the last payload chunk
    with pytest.raises(GencodecError, match="chunk 0"):
        gencodec.decompress(bytes(blob))



def test_jpeg_files_are_recompressed_and_restored_byte_for_byte(tmp_path, kodak_crop):
    import io as _io

    if not gencodec.get_codec("jpeg-recompress").available:
        pytest.skip("no JPEG XL")
    img = kodak_crop("kodim23", (0, 0, 384, 256))
    for kw in (dict(quality=90), dict(quality=70, progressive=True), dict(quality=95, subsampling=0)):
        buf = _io.BytesIO()
        img.save(buf, format="JPEG", **kw)
        jpeg = buf.getvalue()
        blob = gencodec.compress(jpeg)  # auto: JPEG files by their first bytes
        assert gencodec.info(blob)["codec"] == "jpeg-recompress"
        assert gencodec.decompress(blob) == jpeg and len(blob) < len(jpeg)
        path = tmp_path / "photo.jpg"
        path.write_bytes(jpeg)
        assert gencodec.info(gencodec.compress(path))["codec"] == "jpeg-recompress"
    with pytest.raises(gencodec.UnsupportedInputError, match="codes JPEG files"):
        gencodec.compress(b"not a jpeg at all", codec="jpeg-recompress")
    broken = jpeg[:200]  # a truncated JPEG: auto still codes it, with another codec
    assert gencodec.decompress(gencodec.compress(broken)) == broken


@pytest.mark.parametrize("codec", ["webp", "avif", "jpeg-xl"])
@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_lossy_codecs_keep_alpha_exact(codec, mode):
    from PIL import Image as _Image

    if not gencodec.get_codec(codec).available:
        pytest.skip(f"{codec} not available")
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:40, 0:60]
    rgb = np.stack([x * 4, y * 5, (x + y) % 256], -1).astype(np.uint8)
    alpha = rng.integers(0, 256, (40, 60), dtype=np.uint8)
    img = _Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    if mode == "LA":
        img = _Image.merge("LA", (img.convert("L"), img.getchannel("A")))
    out = gencodec.decompress(gencodec.compress(img, codec=codec, quality=80))
    assert out.mode == mode and out.size == img.size
    assert np.array_equal(np.asarray(out.getchannel("A")), alpha)
    colour = np.asarray(out.convert("RGB" if mode == "RGBA" else "L"), np.float64)
    ref = np.asarray(img.convert("RGB" if mode == "RGBA" else "L"), np.float64)
    assert 10 * np.log10(255**2 / np.mean((colour - ref) ** 2)) > 25  # the colour is coded, lossily
    opaque = _Image.fromarray(np.dstack([rgb, np.full((40, 60), 255, np.uint8)]), "RGBA")
    assert gencodec.decompress(gencodec.compress(opaque, codec=codec, quality=80)).mode == "RGBA"
