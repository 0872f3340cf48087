"""A folder of files as training bytes for byte models: every regular file under the folder
(sorted by relative path, hidden files skipped), split into train / validation by file, and
sampled as (window, next byte) pairs.

    texts = load_texts("corpora/text-train")          # TextFolder(train=..., val=...)
    win, target = texts.train.batch(step, 4096, context=16, seed=0)
"""

from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..models.bytenet import windows

__all__ = ["ByteSet", "TextFolder", "load_texts"]


@dataclass
class ByteSet:
    """Files laid end to end: ``data`` (uint8) and each file's first position in ``starts``."""

    names: list[str] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    data: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))
    starts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return int(self.data.size)

    def file_start(self, positions: np.ndarray) -> np.ndarray:
        return self.starts[np.searchsorted(self.starts, positions, side="right") - 1]

    def pairs(self, positions: np.ndarray, context: int) -> tuple[np.ndarray, np.ndarray]:
        """(windows (n, context) int64, next bytes (n,) int64) at these positions; a window never
        reaches into the previous file (byte 0 there, as at the start of a coded input)."""
        return windows(self.data, positions, self.file_start(positions), context), self.data[positions].astype(np.int64)

    def batch(self, step: int, size: int, context: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """A seeded batch: a pure function of (seed, step), so a resumed run sees the same data."""
        rng = np.random.default_rng([seed, step])
        return self.pairs(rng.integers(0, len(self), size), context)

    def sequences(self, starts: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Segments of ``length`` bytes from these starts, as a byte model codes them: (tokens (n, length)
        int64 -- 256, then each byte before the next --, next bytes (n, length) int64, mask (n, length)
        bool: the byte lies in the start's file). Starts are clipped so that every segment fits."""
        starts = np.clip(np.asarray(starts, np.int64), 0, max(len(self) - length, 0))
        pos = np.minimum(starts[:, None] + np.arange(length), max(len(self) - 1, 0))
        nxt = self.data[pos].astype(np.int64)
        tokens = np.concatenate([np.full((len(starts), 1), 256, np.int64), nxt[:, :-1]], axis=1)
        mask = (self.file_start(pos.reshape(-1)).reshape(pos.shape) == self.file_start(starts)[:, None])
        mask &= starts[:, None] + np.arange(length) < len(self)
        return tokens, nxt, mask

    def sequence_batch(self, step: int, n: int, length: int, seed: int):
        """A seeded batch of :meth:`sequences`: a pure function of (seed, step)."""
        rng = np.random.default_rng([seed, step, 1])
        return self.sequences(rng.integers(0, max(len(self) - length, 1), n), length)

    def sample_positions(self, n: int, seed: int = 12345) -> np.ndarray:
        """n fixed positions (all of them when there are fewer), sorted."""
        if len(self) <= n:
            return np.arange(len(self))
        return np.sort(np.random.default_rng(seed).choice(len(self), n, replace=False))

    def rows(self) -> list[dict]:
        ends = list(self.starts[1:]) + [len(self)]
        return [dict(name=n, sha256=h, bytes=int(e - s)) for n, h, s, e in zip(self.names, self.hashes, self.starts, ends)]


@dataclass
class TextFolder:
    root: str
    train: ByteSet
    val: ByteSet

    def describe(self) -> dict:
        """Names, hashes and sizes, for a model card."""
        return dict(root=self.root, train_bytes=len(self.train), val_bytes=len(self.val),
                    train=self.train.rows(), val=self.val.rows())


def _byteset(root: Path, rels: list[str]) -> ByteSet:
    chunks, starts, hashes, pos = [], [], [], 0
    for rel in rels:
        raw = (root / rel).read_bytes()
        chunks.append(np.frombuffer(raw, np.uint8))
        starts.append(pos)
        hashes.append(hashlib.sha256(raw).hexdigest())
        pos += len(raw)
    data = np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)
    return ByteSet(list(rels), hashes, data, np.array(starts, np.int64))


def load_texts(root: str | Path, val_glob: str | None = None, val_fraction: float = 0.05) -> TextFolder:
    """Every non-empty regular file under ``root``, split by file: those matching ``val_glob``
    (relative paths) go to validation; without it a fixed ``val_fraction`` chosen by hash of the
    relative path (deterministic, at least one file)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    rels = sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
                  and p.stat().st_size > 0)
    if len(rels) < 2:
        raise FileNotFoundError(f"{root}: needs at least two non-empty files (one is held out for validation)")
    if val_glob:
        val = {r for r in rels if fnmatch.fnmatch(r, val_glob)}
    else:
        ranked = sorted(rels, key=lambda r: hashlib.sha256(r.encode()).hexdigest())
        val = set(ranked[: max(1, round(val_fraction * len(rels)))])
    if not val or len(val) == len(rels):
        raise FileNotFoundError(f"{root}: validation split leaves {'no' if not val else 'only'} validation files")
    return TextFolder(str(root), _byteset(root, [r for r in rels if r not in val]), _byteset(root, [r for r in rels if r in val]))
