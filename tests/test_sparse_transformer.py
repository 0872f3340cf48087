"""sparse-transformer: the attention model behind pixelcnn's exact core. A tiny seeded model (random
blocks, so attention matters) keeps these fast; the shipped model has its own pinned frame."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

import gencodec  # noqa: E402
from gencodec.errors import ModelMismatchError  # noqa: E402
from gencodec.exact import driver  # noqa: E402
from gencodec.models import zoo  # noqa: E402
from gencodec.models.pixelcnn import PixelCNN, PixelCNNConfig, causal_pad  # noqa: E402
from gencodec.models.attention import SOFTMAX_LUT, attend  # noqa: E402
from gencodec.models.sparse_transformer import ExactSparseTransformer, SparseTransformer, SparseTransformerConfig  # noqa: E402

from exact_harness import assert_causal, harness_image  # noqa: E402

BASE = dict(hidden=16, trunk_layers=1, head_hidden=6, colour_preds=True, mean_frac_bits=1, phase_inputs=True)
PINNED_LUT = "c59579d5c1927173"  # sha256 of the softmax table (int64 little-endian), first 16 hex digits
TINY = SparseTransformerConfig(**BASE, blocks=2, head_dim=4, row_window=3, col_window=3, mlp_hidden=16)


def _random_blocks(model: SparseTransformer, seed: int) -> SparseTransformer:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in model.block_layers():
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) * 0.4)
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=g) * 0.2)
    return model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[ExactSparseTransformer, Path]:
    torch.manual_seed(7)
    model = _random_blocks(SparseTransformer(TINY), 1)
    exact = model.export()
    path = tmp_path_factory.mktemp("st") / "tiny.safetensors"
    exact.save(path)
    return exact, path


def photo(w: int, h: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    img = Image.fromarray(harness_image(h, w, seed).transpose(1, 2, 0))
    if mode in ("L", "LA"):
        img = img.convert("L")
    if mode in ("LA", "RGBA"):
        img = img.convert(mode)
        img.putalpha(Image.fromarray((np.arange(w * h).reshape(h, w) % 251).astype(np.uint8)))
    return img


@pytest.mark.parametrize("shape", [(3, 1, 1), (3, 1, 9), (3, 9, 1), (3, 13, 17), (1, 11, 8), (3, 30, 7)])
@pytest.mark.parametrize("kept", [True, False], ids=["kept", "runs"])
def test_parallel_tables_equal_the_decoders_incremental_tables(tiny, shape, kept, monkeypatch):
    """The encoder's stripes with their halo (the image's output kept, or computed run by run) and the
    decoder's ring buffers give the same tables."""
    from gencodec.models import sparse_transformer

    if not kept:
        monkeypatch.setattr(sparse_transformer, "CONTEXT_CACHE_BYTES", 0)
    model, _ = tiny
    model.release()
    n, h, w = shape
    planes = harness_image(h, w, seed=h * w)[:n]
    with model.coding():
        par = driver.tables_in_order(model, planes, "parallel")
        ses = driver.tables_in_order(model, planes, "session")
    assert np.array_equal(par, ses)


def test_stripes_of_any_height_and_runs_of_rows_give_the_same_numbers(tiny):
    model, _ = tiny
    img = harness_image(29, 11, seed=3)
    padded = causal_pad(img.astype(np.int32), model.cfg)
    with model.coding():
        runs = [model.tables_parallel(img, 3, rows_per_chunk=r) for r in (1, 4, 8, 29)]
        full = model.hidden_rows(img, padded, range(29), None, None).reshape(29, 11, -1)
        for rows in ([0, 1, 2], [5], [3, 4, 9, 10, 11], [28]):  # each run of rows with its own halo
            assert np.array_equal(model._runs(img, padded, rows), full[rows].reshape(len(rows) * 11, -1))
    for mean, idx in runs[1:]:
        assert np.array_equal(mean, runs[0][0]) and np.array_equal(idx, runs[0][1])


def test_no_table_depends_on_a_later_subpixel(tiny):
    model, _ = tiny
    planes = harness_image(9, 10, seed=5)
    with model.coding():
        for k in (0, 7, 100, 150):
            assert_causal(model, planes, k)


def test_attention_reaches_beyond_pixelcnns_neighbourhood(tiny):
    """Changing one pixel changes tables of pixels whose pixelcnn neighbourhood does not hold it (the
    row and column heads reach further)."""
    model, _ = tiny
    img = harness_image(16, 16, seed=2)
    py, px = 6, 5
    other = img.copy()
    other[:, py, px] = 255 - other[:, py, px]
    with model.coding():
        (m0, i0), (m1, i1) = model.tables_parallel(img, 3), model.tables_parallel(other, 3)
    changed = np.any((m0 != m1) | (i0 != i1), axis=0)
    local = np.zeros_like(changed)
    local[py, px] = True
    for dy, dx in model.cfg.offsets:  # pixels that have (py, px) in their own neighbourhood
        if 0 <= py - dy < 16 and 0 <= px - dx < 16:
            local[py - dy, px - dx] = True
    assert np.any(changed & ~local)
    assert not np.any(changed[:py]) and not np.any(changed[py, :px])  # and never an earlier pixel


def test_identity_blocks_give_exactly_the_pixelcnn_tables():
    """A model started from a pixelcnn model computes what that model computed (blocks start as the
    identity), under its own arch and id."""
    torch.manual_seed(2)
    pc = PixelCNN(PixelCNNConfig(**BASE)).export()
    st = SparseTransformer.from_pixelcnn(pc).export()
    img = harness_image(14, 12)
    assert np.array_equal(driver.tables_in_order(pc, img, "parallel"), driver.tables_in_order(st, img, "parallel"))
    assert st.arch == "sparse-transformer" and st.model_id != pc.model_id


def test_softmax_table_and_exact_attention():
    assert SOFTMAX_LUT[0] == 4096 and np.all(np.diff(SOFTMAX_LUT) <= 0) and SOFTMAX_LUT[-1] >= 1
    assert SOFTMAX_LUT.size == 73 and SOFTMAX_LUT[:4].tolist() == [4096, 3615, 3190, 2815]
    assert hashlib.sha256(SOFTMAX_LUT.astype("<i8").tobytes()).hexdigest()[:16] == PINNED_LUT
    q = np.array([[8, 0]], np.float32)
    k = np.array([[[8, 0], [0, 0], [8, 0]]], np.float32)
    v = np.array([[[100, -4], [0, 60], [10, 9]]], np.float32)
    out = attend(q, k, v, np.array([[True, True, False]]), shift=0)  # the third position is masked
    w = SOFTMAX_LUT[[0, 64]]
    assert np.array_equal(out[0], np.floor((w @ v[0, :2] * 2 + w.sum()) / (2 * w.sum())).astype(np.int64))


def test_training_twin_computes_the_exact_models_code_length(tiny):
    torch.manual_seed(7)
    model = _random_blocks(SparseTransformer(TINY), 1)
    img = harness_image(20, 18, seed=4)
    with torch.no_grad():
        bits = float(model(torch.from_numpy(img).float()[None]).sum())
    exact_bits = model.export().ideal_bits(img)
    assert abs(bits / exact_bits - 1) < 0.01  # the table's rounding of the softmax aside


@pytest.mark.parametrize("mode,size", [("RGB", (1, 1)), ("RGB", (17, 5)), ("L", (9, 13)), ("LA", (6, 7)),
                                       ("RGBA", (12, 4)), ("RGB", (64, 56))])
def test_round_trips_every_mode_and_size(tiny, mode, size):
    """Every supported mode and edge sizes; 64x56 also refits the heads (rows of a sample: the
    parallel pass on separate rows, each with its halo)."""
    _, path = tiny
    img = photo(*size, mode=mode)
    blob = gencodec.compress(img, codec="sparse-transformer", model=str(path))
    back = gencodec.decompress(blob, model=str(path))
    assert back.mode == img.mode and np.array_equal(np.asarray(back), np.asarray(img))
    assert gencodec.info(blob)["codec"] == "sparse-transformer"


def test_a_frame_of_another_model_is_refused(tiny):
    _, path = tiny
    blob = gencodec.compress(photo(8, 8), codec="sparse-transformer", model=str(path))
    torch.manual_seed(8)
    other = Path(path).with_name("other.safetensors")
    _random_blocks(SparseTransformer(TINY), 2).export().save(other)
    with pytest.raises(ModelMismatchError):
        gencodec.decompress(blob, model=str(other))


def test_damaged_frames_give_one_error_and_no_image(tiny):
    from gencodec import container
    from gencodec.errors import GencodecError

    _, path = tiny
    blob = gencodec.compress(photo(20, 14), codec="sparse-transformer", model=str(path))
    header, payload = container.unpack(blob)
    damaged = [payload[: len(payload) // 2], payload[:6] + bytes([payload[6] ^ 0x55]) + payload[7:], b""]
    for bad in damaged:
        with pytest.raises(GencodecError):
            gencodec.decompress(container.pack(header, bad), model=str(path))


def test_saved_model_reloads_with_its_id_and_config(tiny):
    model, path = tiny
    again = zoo.load(path, "sparse-transformer")
    assert again.model_id == model.model_id and again.cfg == TINY


CHILD = """
import hashlib, sys, numpy as np, torch
from gencodec.exact import driver
from gencodec.models import zoo
sys.path.insert(0, {tests!r})
from exact_harness import harness_image
torch.set_num_threads({threads})
m = zoo.load({path!r})
img = harness_image(19, 23, seed=6)
with m.coding():
    out = [hashlib.sha256(driver.tables_in_order(m, img, p).tobytes()).hexdigest() for p in ("parallel", "session")]
print(" ".join(out))
"""


def test_same_tables_under_other_kernels_and_threads(tiny):
    """Children under ATEN_CPU_CAPABILITY=default / avx2 and 1 / 2 threads hash the same tables as here."""
    model, path = tiny
    img = harness_image(19, 23, seed=6)
    with model.coding():
        here = " ".join(hashlib.sha256(driver.tables_in_order(model, img, p).tobytes()).hexdigest()
                        for p in ("parallel", "session"))
    tests = str(Path(__file__).parent)
    for cap, threads in (("default", 1), ("avx2", 2)):
        env = {**os.environ, "ATEN_CPU_CAPABILITY": cap, "OMP_NUM_THREADS": str(threads)}
        out = subprocess.run([sys.executable, "-c", CHILD.format(tests=tests, threads=threads, path=str(path))],
                             env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.split() == here.split(), (cap, threads)


def test_training_recipe_starts_from_a_pixelcnn_file(tmp_path):
    """`gencodec train sparse-transformer` from a pixelcnn model: step 0 is that model; a few steps
    give a model file with its card, which codes and decodes."""
    from gencodec.train.sparse_transformer import run

    data = tmp_path / "photos"
    data.mkdir()
    for i in range(3):
        photo(40, 36, seed=i).save(data / f"{i}.png")
    torch.manual_seed(2)
    pc_path = tmp_path / "pc.safetensors"
    PixelCNN(PixelCNNConfig(**BASE)).export().save(pc_path)
    out = tmp_path / "st.safetensors"
    card = run(data, out, steps=3, workdir=tmp_path / "run", progress=False, init_from=pc_path,
               config={"blocks": 1, "head_dim": 4, "row_window": 3, "col_window": 2, "mlp_hidden": 8},
               crop=16, batch=2, val_glob="0.png")
    assert card["model"] == "sparse-transformer" and json.loads(out.with_suffix(".json").read_text())["steps"] == 3
    img = photo(10, 9, seed=5)
    blob = gencodec.compress(img, codec="sparse-transformer", model=str(out))
    assert np.array_equal(np.asarray(gencodec.decompress(blob, model=str(out))), np.asarray(img))


GOLDEN = Path(__file__).parent / "golden" / "sparse-transformer" / "kodim05-64x48.gcx"


@pytest.mark.skipif(not GOLDEN.exists() or not zoo.default_weights("sparse-transformer").is_file(),
                    reason="no shipped sparse-transformer model")
def test_golden_file_of_the_shipped_model(kodak_crop):
    """A frame the shipped model wrote (with the adaptation its encoder chose): it decodes to the crop, and
    today's encoder writes the same range-coded stream (the zlib parts compared unpacked)."""
    from gencodec import container

    blob = GOLDEN.read_bytes()
    img = kodak_crop("kodim05", (300, 200, 364, 248))
    assert np.array_equal(np.asarray(gencodec.decompress(blob)), np.asarray(img))
    header, payload = container.unpack(blob)
    again_header, again = container.unpack(gencodec.compress(img, codec="sparse-transformer"))
    assert header.model_id == again_header.model_id == zoo.default_model("sparse-transformer").model_id
    n = int.from_bytes(payload[:4], "little")
    assert again[: 4 + n] == payload[: 4 + n] and header.params == again_header.params
