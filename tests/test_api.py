"""The one-shot API: compress / decompress / info / get_codec / list_codecs, on real inputs."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import gencodec
from gencodec import container
from gencodec.errors import (
    GencodecError,
    LimitError,
    UnknownCodecError,
    UnsupportedInputError,
)
from gencodec.imageio import pixel_digest
from gencodec.registry import AUTO_BYTES_CANDIDATES, AUTO_IMAGE_RANKING, AUTO_NEURAL_BYTES

ALL_CODECS = {
    "png": "lossless-image",
    "webp-lossless": "lossless-image",
    "jpeg-xl-lossless": "lossless-image",
    "jpeg2000-lossless": "lossless-image",
    "jpeg": "lossy-image",
    "webp": "lossy-image",
    "avif": "lossy-image",
    "jpeg-xl": "lossy-image",
    "stored": "bytes",
    "gzip": "bytes",
    "bz2": "bytes",
    "xz": "bytes",
    "zstd": "bytes",
    "brotli": "bytes",
}


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# inputs


def test_bytes_in_bytes_out(canterbury_dir):
    data = (canterbury_dir / "fields.c").read_bytes()
    blob = gencodec.compress(data)
    out = gencodec.decompress(blob)
    assert isinstance(out, bytes) and out == data
    head = gencodec.info(blob)
    assert head["kind"] == "bytes" and head["name"] == ""
    assert head["codec"] == "bytemodel"  # smaller than every classical codec on this C file


def test_png_bytes_are_bytes_unless_as_image(kodak_crop):
    img = kodak_crop()
    raw = png_bytes(img)
    as_bytes = gencodec.compress(raw)
    assert gencodec.info(as_bytes)["kind"] == "bytes"
    assert gencodec.decompress(as_bytes) == raw
    as_pixels = gencodec.compress(raw, as_image=True)
    assert gencodec.info(as_pixels)["kind"] == "image"
    out = gencodec.decompress(as_pixels)
    assert isinstance(out, Image.Image) and pixel_digest(out) == pixel_digest(img)


def test_auto_gives_a_codec_only_the_modes_it_codes_itself(kodak_crop, monkeypatch):
    """pixelcnn accepts palette images but only hands them to PNG: auto passes them on down the ranking."""
    import gencodec.api

    monkeypatch.setattr(gencodec.api, "AUTO_IMAGE_RANKING", ["pixelcnn", "webp-lossless", "png"])
    rgb = kodak_crop().crop((0, 0, 80, 64))  # above auto's minimum for a neural codec
    assert gencodec.info(gencodec.compress(rgb))["codec"] == "pixelcnn"
    pal = rgb.convert("P")
    blob = gencodec.compress(pal)
    assert gencodec.info(blob)["codec"] == "webp-lossless"  # the next in the ranking that codes P
    assert gencodec.decompress(blob).tobytes() == pal.tobytes()


def test_path_to_png_is_coded_as_pixels_by_the_first_ranked_codec(tmp_path, kodak_crop):
    img = kodak_crop()
    path = tmp_path / "crop.png"
    img.save(path)
    blob = gencodec.compress(path)
    head = gencodec.info(blob)
    assert head["kind"] == "image" and head["codec"] == AUTO_IMAGE_RANKING[0]
    assert head["name"] == "crop.png"
    assert (head["width"], head["height"], head["mode"], head["bit_depth"]) == (128, 96, "RGB", 8)
    assert len(blob) < path.stat().st_size
    assert pixel_digest(gencodec.decompress(blob)) == pixel_digest(img)
    assert gencodec.compress(str(path)) == blob  # str and PathLike alike


def test_path_to_bmp_keeps_mode(tmp_path, kodak_crop):
    img = kodak_crop().convert("L")
    img.save(tmp_path / "grey.bmp")
    out = gencodec.decompress(gencodec.compress(tmp_path / "grey.bmp"))
    assert out.mode == "L" and out.tobytes() == img.tobytes()


def test_path_to_text_is_coded_as_bytes(canterbury_dir):
    path = canterbury_dir / "alice29.txt"
    blob = gencodec.compress(path)
    head = gencodec.info(blob)
    assert head["kind"] == "bytes" and head["name"] == "alice29.txt"
    assert head["codec"] == "bytemodel"  # it codes this book smaller than every classical codec
    assert head["length"] == path.stat().st_size
    assert gencodec.decompress(blob) == path.read_bytes()
    assert head["bits_per_byte"] < 2.1  # xz 2.56, brotli 2.45, bytemodel 2.03


@pytest.mark.parametrize("name", ["cp.html", "xargs.1", "sum"])
def test_auto_picks_the_smallest_byte_codec(canterbury_dir, name):
    data = (canterbury_dir / name).read_bytes()
    sizes = {c: len(gencodec.compress(data, codec=c)) for c in [*AUTO_BYTES_CANDIDATES, *AUTO_NEURAL_BYTES]}
    blob = gencodec.compress(data)
    assert len(blob) == min(sizes.values())
    assert gencodec.info(blob)["codec"] == {"cp.html": "bytemodel", "xargs.1": "bytemodel", "sum": "xz"}[name]


def test_auto_leaves_large_inputs_to_the_classical_codecs(monkeypatch):
    import gencodec.api

    monkeypatch.setattr(gencodec.api, "AUTO_NEURAL_BYTES", {"bytemodel": 1000})
    data = b"the quick brown fox jumps over the lazy dog. " * 100
    assert gencodec.info(gencodec.compress(data))["codec"] in AUTO_BYTES_CANDIDATES


def test_auto_does_not_load_a_model_for_tiny_inputs(monkeypatch):
    """Thumbnails and a few bytes go to classical codecs: the neural start-up would buy nothing."""
    from gencodec.registry import AUTO_NEURAL_MIN_BYTES, AUTO_NEURAL_MIN_PIXELS

    calls = []
    real = gencodec.api.get_codec
    monkeypatch.setattr(gencodec.api, "get_codec", lambda name, **kw: calls.append(name) or real(name, **kw))
    assert gencodec.info(gencodec.compress(b"tiny text " * 10))["codec"] in AUTO_BYTES_CANDIDATES
    img = Image.fromarray(np.full((8, 8, 3), 100, np.uint8))
    assert gencodec.info(gencodec.compress(img))["codec"] != "pixelcnn"
    assert "bytemodel" not in calls and "pixelcnn" not in calls
    assert AUTO_NEURAL_MIN_BYTES > 100 and AUTO_NEURAL_MIN_PIXELS["pixelcnn"] > 64


@pytest.mark.parametrize("n_bytes", [0, 1, 7, 300, 5000])
def test_auto_never_bigger_than_stored_on_incompressible_bytes(n_bytes):
    data = np.random.default_rng(n_bytes).integers(0, 256, n_bytes, dtype=np.uint8).tobytes()
    blob = gencodec.compress(data)
    assert len(blob) <= len(gencodec.compress(data, codec="stored"))
    assert gencodec.decompress(blob) == data


@pytest.mark.parametrize("mode", ["LA", "RGB", "RGBA", "L", "P"])
@pytest.mark.parametrize("kind", ["noise", "gradient"])
@pytest.mark.parametrize("size", [(5, 5), (16, 16), (17, 5)])
def test_auto_never_bigger_than_stored_on_small_image_files(tmp_path, synthetic, mode, kind, size):
    """Tiny images whose pixel payload is about the size of the PNG file: compare whole frames."""
    img = synthetic(mode, kind, size, seed=2)
    extra = {"transparency": img.info["transparency"]} if mode == "P" else {}
    path = tmp_path / "small.png"
    img.save(path, **extra)
    blob = gencodec.compress(path)
    assert len(blob) <= len(gencodec.compress(path, codec="stored"))
    out = gencodec.decompress(blob)
    if gencodec.info(blob)["kind"] == "bytes":
        assert out == path.read_bytes()
    else:
        assert out.tobytes() == img.tobytes() and out.mode == mode


def test_pil_image_and_numpy_arrays(kodak_crop):
    img = kodak_crop()
    rgb = np.asarray(img)
    for data, mode in [(img, "RGB"), (rgb, "RGB"), (rgb[:, :, 0], "L"), (rgb[:, :, :1], "L"),
                       (np.dstack([rgb, rgb[:, :, :1]]), "RGBA"), (rgb[:, :, :2], "LA"),
                       (rgb[:, :, 0].astype(np.uint16) * 250, "I;16")]:
        blob = gencodec.compress(data)
        out = gencodec.decompress(blob)
        assert isinstance(out, Image.Image) and out.mode == mode and out.size == img.size
        assert np.array_equal(np.asarray(out), np.asarray(data).reshape(np.asarray(out).shape))
        assert gencodec.info(blob)["codec"] in AUTO_IMAGE_RANKING


def test_bad_arrays_are_refused():
    with pytest.raises(UnsupportedInputError, match="float64"):
        gencodec.compress(np.zeros((4, 4)))
    with pytest.raises(UnsupportedInputError, match="shape"):
        gencodec.compress(np.zeros((4, 4, 5), np.uint8))


def test_codec_kind_must_match_input(kodak_crop, canterbury_dir):
    with pytest.raises(UnsupportedInputError, match="codes bytes"):
        gencodec.compress(kodak_crop(), codec="xz")
    with pytest.raises(UnsupportedInputError, match="codes images"):
        gencodec.compress(canterbury_dir / "fields.c", codec="png")


def test_lossy_codec_through_the_api(kodak_crop):
    img = kodak_crop()
    blob = gencodec.compress(img, codec="jpeg", quality=85)
    head = gencodec.info(blob)
    assert head["codec"] == "jpeg" and head["params"] == {"quality": 85}
    out = gencodec.decompress(blob)
    assert out.mode == "RGB" and out.size == img.size
    assert out.tobytes() != img.tobytes()  # lossy: close, not equal


# ---------------------------------------------------------------------------------------------
# info, registry


def test_info_fields_for_an_image(kodak_crop):
    blob = gencodec.compress(kodak_crop(), codec="png", name="x.png")
    head = gencodec.info(blob)
    header, payload = container.unpack(blob)
    assert head["codec"] == "png" and head["kind"] == "image" and head["name"] == "x.png"
    assert head["params"] == {} and head["model_id"] == ""
    assert (head["width"], head["height"], head["mode"], head["bit_depth"]) == (128, 96, "RGB", 8)
    assert head["checksum"] == header.checksum.hex() and len(header.checksum) == 16
    assert head["n_bytes"] == len(blob) and head["payload_bytes"] == len(payload)
    assert head["bits_per_subpixel"] == pytest.approx(8 * len(blob) / (128 * 96 * 3))
    assert head["bits_per_pixel"] == pytest.approx(8 * len(blob) / (128 * 96))
    assert gencodec.compress_report(kodak_crop(), codec="png", name="x.png").payload_bytes == len(payload)


def test_info_fields_for_bytes():
    blob = gencodec.compress(b"hello hello hello hello", codec="gzip", name="h.txt")
    head = gencodec.info(blob)
    assert head["codec"] == "gzip" and head["kind"] == "bytes" and head["name"] == "h.txt"
    assert head["length"] == 23 and head["bits_per_byte"] == pytest.approx(8 * len(blob) / 23)
    assert "width" not in head


def test_get_codec_unknown_name():
    with pytest.raises(UnknownCodecError, match="'nope'"):
        gencodec.get_codec("nope")
    with pytest.raises(UnknownCodecError, match="'nope'"):
        gencodec.compress(b"abc", codec="nope")


def test_get_codec_returns_named_codecs():
    for name, kind in ALL_CODECS.items():
        codec = gencodec.get_codec(name)
        assert codec.name == name and codec.kind == kind


def test_list_codecs_lists_every_classical_codec_with_its_kind():
    listed = {c["name"]: c for c in gencodec.list_codecs()}
    for name, kind in ALL_CODECS.items():
        entry = listed[name]
        assert entry["kind"] == kind and entry["description"]
        assert entry["available"] is True and entry["reason"] is None  # all installed here


# ---------------------------------------------------------------------------------------------
# errors and limits


def test_directory_and_missing_file(tmp_path):
    with pytest.raises(GencodecError, match="is a directory") as err:
        gencodec.compress(tmp_path)
    assert "\n" not in str(err.value) and str(tmp_path) in str(err.value)
    with pytest.raises(GencodecError, match="no such file") as err:
        gencodec.compress(tmp_path / "missing.png")
    assert "\n" not in str(err.value) and "missing.png" in str(err.value)


def test_pixel_limit_is_checked_before_decoding(kodak_crop, monkeypatch):
    blob = gencodec.compress(kodak_crop(), codec="png")  # 128 x 96 = 12288 pixels
    assert gencodec.decompress(blob, max_pixels=128 * 96).size == (128, 96)
    with pytest.raises(LimitError, match="12288|128x96"):
        gencodec.decompress(blob, max_pixels=128 * 96 - 1)
    # a garbage payload behind a huge header: the limit answers first, nothing is decoded
    header, _ = container.unpack(blob)
    huge = header.__class__(**{**header.__dict__, "width": 1 << 20, "height": 1 << 20})
    with pytest.raises(LimitError):
        gencodec.decompress(container.pack(huge, b"not a png"))
    monkeypatch.setenv("GENCODEC_MAX_PIXELS", "100")
    with pytest.raises(LimitError, match="100"):
        gencodec.decompress(blob)


def test_decompress_refuses_non_frames():
    with pytest.raises(GencodecError, match="not a .gcx file"):
        gencodec.decompress(b"PK\x03\x04 a zip file")
    with pytest.raises(GencodecError, match="empty"):
        gencodec.decompress(b"")
