"""The .gcx frame (gencodec.container): layout, chunking, damage detection, golden files."""

from __future__ import annotations

import hashlib
import importlib.util
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gencodec
from gencodec import container
from gencodec.container import FORMAT_VERSION, MAGIC, Header
from gencodec.errors import CorruptFileError, UnsupportedVersionError

GOLDEN = Path(__file__).resolve().parent / "golden"
HELLO = b"hello gencodec\n"

_spec = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
make_golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_golden)


def bytes_header(payload_len: int = 15, **kw) -> Header:
    d = dict(codec="stored", kind="bytes", checksum=bytes(range(16)), name="a.txt", length=payload_len)
    d.update(kw)
    return Header(**d)


def image_header(**kw) -> Header:
    d = dict(codec="png", kind="image", checksum=b"\xaa" * 16, params={"k": [1, 2]}, model_id=b"\x01\x02",
             name="p.png", width=640, height=480, mode="RGBA", bit_depth=8)
    d.update(kw)
    return Header(**d)


def head_len(blob: bytes) -> int:
    """Bytes of magic, version, header length, header and header CRC."""
    return 4 + 1 + 4 + struct.unpack_from("<I", blob, 5)[0] + 4


def chunk_sizes(blob: bytes) -> list[int]:
    pos, sizes = head_len(blob), []
    while (n := struct.unpack_from("<I", blob, pos)[0]) != 0:
        sizes.append(n)
        pos += 4 + n + 4
    return sizes


# ---------------------------------------------------------------------------------------------
# layout


def test_round_trip_bytes_and_image_headers():
    for header, payload in [(bytes_header(), HELLO), (image_header(), b"\x00\xff" * 100)]:
        blob = container.pack(header, payload)
        assert container.unpack(blob) == (header, payload)
        assert container.read_header(blob) == header
        assert container.payload_size(blob) == len(payload)


def test_fixed_fields_are_little_endian():
    header = bytes_header()
    blob = container.pack(header, HELLO)
    body = container.encode_header(header)
    assert blob[:4] == b"\x89GCX" == MAGIC
    assert blob[4] == FORMAT_VERSION == 1
    assert struct.unpack_from("<I", blob, 5)[0] == len(body)
    assert blob[9 : 9 + len(body)] == body
    assert struct.unpack_from("<I", blob, 9 + len(body))[0] == zlib.crc32(blob[: 9 + len(body)])
    assert blob[-4:] == b"\0\0\0\0"


def test_header_body_field_by_field():
    body = container.encode_header(image_header())
    expected = (
        b"\x03png" + b"\x0b\x00" + b'{"k":[1,2]}' + b"\x02\x01\x02" + b"\x01" + b"\x05\x00p.png"
        + struct.pack("<II", 640, 480) + b"\x04RGBA" + b"\x08" + b"\x10" + b"\xaa" * 16
    )
    assert body == expected
    body = container.encode_header(bytes_header(length=2**40, name="é"))
    assert body == b"\x06stored" + b"\0\0" + b"\0" + b"\0" + b"\x02\x00\xc3\xa9" + struct.pack("<Q", 2**40) + b"\x10" + bytes(range(16))


def test_header_to_dict():
    assert image_header().to_dict() == dict(
        codec="png", kind="image", params={"k": [1, 2]}, model_id="0102", name="p.png", checksum="aa" * 16,
        width=640, height=480, mode="RGBA", bit_depth=8,
    )
    assert bytes_header().to_dict()["length"] == 15


def test_overlong_fields_are_refused_when_writing():
    with pytest.raises(ValueError, match="codec name"):
        container.encode_header(bytes_header(codec="x" * 256))
    with pytest.raises(ValueError, match="file name"):
        container.encode_header(bytes_header(name="n" * 70000))


def test_checksum_is_blake2b_128():
    assert container.checksum(HELLO) == hashlib.blake2b(HELLO, digest_size=16).digest()
    assert len(container.checksum(b"")) == 16


# ---------------------------------------------------------------------------------------------
# chunking


def test_payload_is_split_into_chunks():
    payload = bytes(range(256)) * 10  # 2560 bytes
    blob = container.pack(bytes_header(len(payload)), payload, chunk_size=1000)
    assert chunk_sizes(blob) == [1000, 1000, 560]
    assert container.unpack(blob)[1] == payload


def test_default_chunk_size():
    payload = b"\x5a" * (container.CHUNK_SIZE + 5)
    blob = container.pack(bytes_header(len(payload)), payload)
    assert chunk_sizes(blob) == [container.CHUNK_SIZE, 5]
    assert container.unpack(blob)[1] == payload


def test_empty_payload_has_no_chunks():
    blob = container.pack(bytes_header(0), b"")
    assert chunk_sizes(blob) == []
    assert len(blob) == head_len(blob) + 4
    assert container.unpack(blob)[1] == b""


def test_second_chunk_damage_is_located():
    payload = b"ab" * 50
    blob = bytearray(container.pack(bytes_header(len(payload)), payload, chunk_size=40))
    start = head_len(blob) + 4 + 40 + 4 + 4  # data of chunk 1
    blob[start + 3] ^= 0x10
    with pytest.raises(CorruptFileError, match=rf"payload chunk 1 \(bytes {start}-{start + 39}\) fails its CRC"):
        container.unpack(bytes(blob))


# ---------------------------------------------------------------------------------------------
# damage


FRAMES = {
    "stored": container.pack(bytes_header(), HELLO),
    "chunked": container.pack(bytes_header(), HELLO, chunk_size=4),
    "image": container.pack(image_header(), b"\x01" * 30),
}


@pytest.mark.parametrize("which", sorted(FRAMES))
def test_every_truncation_is_detected(which):
    blob = FRAMES[which]
    for n in range(len(blob)):
        with pytest.raises(CorruptFileError):
            container.unpack(blob[:n])


@pytest.mark.parametrize("which", sorted(FRAMES))
def test_every_single_byte_change_is_detected(which):
    blob = FRAMES[which]
    for i in range(len(blob)):
        for mask in (0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xFF):
            damaged = bytearray(blob)
            damaged[i] ^= mask
            with pytest.raises(CorruptFileError):
                container.unpack(bytes(damaged))


def test_header_damage_message():
    blob = bytearray(FRAMES["stored"])
    blob[12] ^= 1
    with pytest.raises(CorruptFileError, match="header checksum mismatch"):
        container.read_header(bytes(blob))


def test_trailing_bytes_are_refused():
    with pytest.raises(CorruptFileError, match="3 unexpected bytes after the end of the frame"):
        container.unpack(FRAMES["stored"] + b"xyz")


def test_magic_errors():
    with pytest.raises(CorruptFileError, match="empty input"):
        container.unpack(b"")
    with pytest.raises(CorruptFileError, match=r"not a \.gcx file \(bad magic bytes\)"):
        container.unpack(b"PK\x03\x04 zip file")
    with pytest.raises(CorruptFileError, match=r"truncated \.gcx file"):
        container.unpack(MAGIC[:2])


def test_other_versions_are_refused():
    blob = bytearray(FRAMES["stored"])
    for version in (0, 2, 255):
        blob[4] = version
        n = head_len(blob) - 4
        blob[n : n + 4] = struct.pack("<I", zlib.crc32(bytes(blob[:n])))  # a well-formed future frame
        with pytest.raises(UnsupportedVersionError, match=f"unsupported .gcx format version {version} "
                           r"\(this gencodec reads version 1\)"):
            container.unpack(bytes(blob))


def _with_body(body: bytes) -> bytes:
    head = MAGIC + struct.pack("<BI", FORMAT_VERSION, len(body)) + body
    return head + struct.pack("<I", zlib.crc32(head)) + b"\0\0\0\0"


@pytest.mark.parametrize(
    "body,message",
    [
        (b"\x06stored\x00\x00\x00\x07\x00\x00" + b"\0" * 8 + b"\x00", "unknown data kind"),
        (b"\x06stored\x03\x00[1]\x00\x00\x00\x00" + b"\0" * 8 + b"\x00", "malformed header"),
        (b"\x06stored\x03\x00{x}\x00\x00\x00\x00" + b"\0" * 8 + b"\x00", "unreadable header"),
        (b"\x06stored\x60\xea" + b"[" * 60000 + b"\x00\x00\x00\x00" + b"\0" * 8 + b"\x00", "unreadable header"),
        (b"\x02\xff\xfe\x00\x00\x00\x00\x00\x00" + b"\0" * 8 + b"\x00", "unreadable header"),
        (b"\x06stored\x00\x00\x00\x00\x00\x00" + b"\0" * 8 + b"\x00extra", "malformed header"),
        (b"\x06stored\x00\x00\x00\x00\x00\x00" + b"\0" * 4, "truncated header"),
    ],
)
def test_malformed_headers_with_valid_crc(body, message):
    with pytest.raises(CorruptFileError, match=message):
        container.unpack(_with_body(body))


@settings(max_examples=60, deadline=None)
@given(
    payload=st.binary(max_size=300),
    name=st.text(max_size=20),
    params=st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
    chunk_size=st.integers(1, 64),
)
def test_round_trip_property(payload, name, params, chunk_size):
    header = bytes_header(len(payload), name=name, params=params)
    blob = container.pack(header, payload, chunk_size=chunk_size)
    assert container.unpack(blob) == (header, payload)
    assert container.frame_size(header, len(payload), chunk_size=chunk_size) == len(blob)


# ---------------------------------------------------------------------------------------------
# golden files: bytes pinned on purpose; regenerate only for a deliberate format change

GOLDEN_SHA256 = {
    "hello-stored.gcx": "4bfb205b5fcc9c7adde991d55a8468252ec228f470f58aa6ea982acfcac714a5",
    "hello-stored-chunked.gcx": "9e3d27d1694832510b6e66b0bce32d5e6a9a99f89d5c4f63557fa086cf5ead57",
    "hello-xz.gcx": "97e75812ffb88157f87e6d356327cd9a9199fbe67ca0c23552e07ba3c6384f1d",
    "rgb-4x3-png.gcx": "afa769364cc84df11592b6cc580b00560d62b2f01bf8740ed57716433c076c4b",
}

#: hello-stored.gcx in full (docs/FORMAT.md walks through it byte by byte)
HELLO_STORED = bytes.fromhex(
    "89474358" "01" "2f000000"
    "06" "73746f726564" "0000" "00" "00" "0900" "68656c6c6f2e747874" "0f00000000000000"
    "10" "f306f0335e3b3b9a02f66f4cfb72e88d"
    "74d736a2"
    "0f000000" "68656c6c6f2067656e636f6465630a" "4218a5dd"
    "00000000"
)


def test_golden_files_are_pinned():
    assert sorted(p.name for p in GOLDEN.glob("*.gcx")) == sorted(GOLDEN_SHA256)
    for name, digest in GOLDEN_SHA256.items():
        assert hashlib.sha256((GOLDEN / name).read_bytes()).hexdigest() == digest, name
    assert (GOLDEN / "hello-stored.gcx").read_bytes() == HELLO_STORED


@pytest.mark.parametrize("name", ["hello-stored.gcx", "hello-stored-chunked.gcx", "hello-xz.gcx"])
def test_golden_text_frames_decode(name):
    blob = (GOLDEN / name).read_bytes()
    assert gencodec.decompress(blob) == HELLO
    header = container.read_header(blob)
    assert (header.kind, header.name, header.length) == ("bytes", "hello.txt", len(HELLO))
    assert header.checksum == container.checksum(HELLO)


def test_golden_image_frame_decodes():
    blob = (GOLDEN / "rgb-4x3-png.gcx").read_bytes()
    img = gencodec.decompress(blob)
    expected = make_golden.tiny_image()
    assert (img.mode, img.size, img.tobytes()) == (expected.mode, expected.size, expected.tobytes())
    header = container.read_header(blob)
    assert (header.codec, header.width, header.height, header.mode, header.bit_depth) == ("png", 4, 3, "RGB", 8)


def test_todays_code_writes_the_golden_frames():
    """The frame layout must not drift: stored frames are rebuilt byte for byte; for xz and png the
    payload belongs to an external library, so the header part is compared exactly."""
    for name, blob in make_golden.frames().items():
        golden = (GOLDEN / name).read_bytes()
        if name.startswith("hello-stored"):
            assert blob == golden, name
        else:
            assert blob[: head_len(blob)] == golden[: head_len(golden)], name
