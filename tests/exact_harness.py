"""Exactness harness: the tables the shipped pixelcnn model gives through the neural codec contract,
hashed under every in-process variation, and a plain float network for the negative control.

Both the test process and the subprocess script ``_exact_child.py`` import this module; the
children run under other ``ATEN_CPU_CAPABILITY``, ``OMP_NUM_THREADS``, ``MKL_CBWR`` and
``OPENBLAS_CORETYPE`` settings and must print the same hashes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from gencodec.exact import driver
from gencodec.models import zoo

#: (torch threads, path, stripe rows): "session" is the decoder's path; the parallel pass runs the
#: network in stripes of that many rows (another batch split)
EXACT_VARIATIONS = [(t, "parallel", rows) for t in (1, 2) for rows in (1, 3, 8)] + [(t, "session", None) for t in (1, 2)]


#: baseline torch kernels with one thread and an old BLAS kernel, then AVX2 and two threads
CHILD_ENVS = [dict(ATEN_CPU_CAPABILITY="default", OMP_NUM_THREADS="1", OPENBLAS_CORETYPE="Prescott"),
              dict(OMP_NUM_THREADS="2")]


def frames_in_children(script: str, src: Path, tmp_path: Path, envs=CHILD_ENVS) -> list[bytes]:
    """Run ``python -c script SRC OUT [FIRST_OUT]`` under each environment (the first child's output
    passed to the later ones, which decode it): the frames they wrote."""
    outs: list[Path] = []
    for i, extra in enumerate(envs):
        env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS")}
        env.update(extra)
        out = tmp_path / f"{i}.gcx"
        args = [sys.executable, "-c", script, str(src), str(out)] + ([str(outs[0])] if outs else [])
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        outs.append(out)
    return [o.read_bytes() for o in outs]


def assert_causal(model, symbols: np.ndarray, k: int) -> None:
    """Flip the k-th symbol in coding order: the decoder's tables up to and including the k-th must
    stay the same (none depends on a later symbol), and some later one must change (the test can fail)."""
    base = driver.tables_in_order(model, symbols, "session")
    order = model.schedule(symbols.shape).order
    changed = symbols.reshape(-1).copy()
    changed[order[k]] ^= 1
    other = driver.tables_in_order(model, changed.reshape(symbols.shape), "session")
    assert np.array_equal(base[: k + 1], other[: k + 1]) and not np.array_equal(base, other)


def harness_image(h: int = 24, w: int = 20, seed: int = 1) -> np.ndarray:
    """A smooth-plus-noise RGB image as planes (3, H, W) uint8, deterministic."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = 100 + 60 * np.sin(x / 4.0)[..., None] + 40 * np.cos(y / 5.0)[..., None] + np.array([0, 20, -20])
    img = np.clip(base + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def sha(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def exact_tables(planes: np.ndarray, path: str = "parallel", rows: int | None = 8) -> np.ndarray:
    """Every table of the shipped model in coding order, by the parallel pass (in stripes of ``rows``)
    or by the decoder's session."""
    model = zoo.default_model("pixelcnn")
    if path == "session":
        return driver.tables_in_order(model, planes, "session")

    class Striped:  # the same model, its parallel pass in other stripes
        def __getattr__(self, name):
            return getattr(model, name)

        def parallel(self, symbols):
            from gencodec.models.pixelcnn import PlaneParams

            return PlaneParams(*model.tables_parallel(symbols, 3, rows_per_chunk=rows))

    return driver.tables_in_order(Striped(), planes, "parallel")


# -- negative control: a plain float network ------------------------------------------------------
def float_outputs(batch: int, n: int = 192, seed: int = 0) -> np.ndarray:
    """Softmax outputs (n, 256) float32 of a float MLP 300-512-256, evaluated ``batch`` rows at a
    time. Ordinary float inference: the bits depend on batch split and CPU instruction set."""
    rng = np.random.default_rng(seed)
    w1 = torch.from_numpy(rng.standard_normal((512, 300)).astype(np.float32) / 17)
    w2 = torch.from_numpy(rng.standard_normal((256, 512)).astype(np.float32) / 22)
    x = torch.from_numpy(rng.standard_normal((n, 300)).astype(np.float32))
    with torch.no_grad():
        parts = [torch.softmax(torch.relu(x[i:i + batch] @ w1.T) @ w2.T, -1) for i in range(0, n, batch)]
    return torch.cat(parts).numpy()


def all_hashes(planes: np.ndarray) -> dict[str, str]:
    """sha256 of the tables under every in-process variation (:data:`EXACT_VARIATIONS`), keys
    ``exact/...``; plus the float control under batch splits 1/7/64, keys ``float/...``."""
    out = {}
    saved = torch.get_num_threads()
    try:
        for threads, path, rows in EXACT_VARIATIONS:
            torch.set_num_threads(threads)
            out[f"exact/{path}/{rows}/t{threads}"] = sha(exact_tables(planes, path, rows))
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for batch in (1, 7, 64):
                out[f"float/b{batch}/t{threads}"] = sha(float_outputs(batch))
    finally:
        torch.set_num_threads(saved)
    return out
