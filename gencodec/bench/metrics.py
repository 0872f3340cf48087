"""Benchmark metrics: rates (bits per byte / subpixel / pixel), PSNR, MS-SSIM, Bjøntegaard BD-rate.

Definitions used throughout the reports (sizes are whole .gcx frames, header included, unless a
name says ``payload``):

* bits per byte      = 8 · compressed bytes / original bytes (the original file's size)
* bits per subpixel  = 8 · compressed bytes / (W · H · C)   (C = channels: 3 for RGB)
* bits per pixel     = 8 · compressed bytes / (W · H)
* PSNR               = 10 · log10(255² / MSE), MSE over every 8-bit sample of all channels (RGB)
* MS-SSIM            = pytorch-msssim's ``ms_ssim`` (5 scales, Gaussian window 11, σ 1.5) on the
                       8-bit samples (data range 255), in float64; None for images with a side
                       under 161 pixels (5 scales need it)
* BD-rate            = Bjøntegaard's average rate difference (VCEG-M33): log-rate fitted as a
                       function of PSNR, integrated over the PSNR interval both curves cover

Only numpy is imported at module level; torch is imported by :func:`ms_ssim` when called.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

#: PSNR targets (dB) for which reports give the bits per pixel a codec needs.
PSNR_TARGETS = (28.0, 30.0, 32.0, 34.0, 36.0, 38.0)


# ---------------------------------------------------------------------------------------------
# rates


def bits_per_byte(n_bytes_out: int, n_bytes_in: int) -> float:
    """8 · n_bytes_out / n_bytes_in (bits per byte of the original file)."""
    return 8.0 * n_bytes_out / max(n_bytes_in, 1)


def bits_per_subpixel(n_bytes_out: int, width: int, height: int, channels: int) -> float:
    """8 · n_bytes_out / (width · height · channels)."""
    return 8.0 * n_bytes_out / max(width * height * channels, 1)


def bits_per_pixel(n_bytes_out: int, width: int, height: int) -> float:
    """8 · n_bytes_out / (width · height)."""
    return 8.0 * n_bytes_out / max(width * height, 1)


def overhead_pct(n_bits: float, ideal_bits: float) -> float | None:
    """How much larger ``n_bits`` is than the model's ideal code length, in percent."""
    if not ideal_bits or ideal_bits <= 0:
        return None
    return 100.0 * (n_bits - ideal_bits) / ideal_bits


# ---------------------------------------------------------------------------------------------
# distortion


def _as_array(img) -> np.ndarray:
    """uint8 array (H, W, C) of a PIL image or array."""
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.dtype != np.uint8:
        raise ValueError(f"PSNR/MS-SSIM are defined here for 8-bit samples, not {arr.dtype}")
    return arr


def comparable_pair(original, decoded) -> tuple[np.ndarray, np.ndarray]:
    """Both images as uint8 arrays (H, W, C) in the original's mode (P/1 compared as RGB/L)."""
    mode = original.mode
    if mode == "P":
        mode = "RGBA" if "transparency" in original.info else "RGB"
        original = original.convert(mode)
    elif mode == "1":
        mode = "L"
        original = original.convert(mode)
    if decoded.mode != mode:
        decoded = decoded.convert(mode)
    a, b = _as_array(original), _as_array(decoded)
    if a.shape != b.shape:
        raise ValueError(f"decoded image has shape {b.shape}, the original {a.shape}")
    return a, b


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error over every sample, computed exactly in int64 then divided once."""
    d = a.astype(np.int64) - b.astype(np.int64)
    return float(np.sum(d * d)) / d.size


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """PSNR in dB of two uint8 arrays of equal shape; ``inf`` when they are identical."""
    m = mse(a, b)
    if m == 0:
        return math.inf
    return 10.0 * math.log10(data_range * data_range / m)


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float | None:
    """MS-SSIM of two uint8 arrays (H, W, C) with pytorch-msssim, or None when an image side is
    too small for 5 scales (< 161 px). Computed in float64 on one thread so that the value does
    not depend on the thread count of the process."""
    h, w = a.shape[:2]
    if min(h, w) <= 160:
        return None
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    x = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).to(torch.float64)[None]  # (1, C, H, W)
    y = torch.from_numpy(np.ascontiguousarray(b.transpose(2, 0, 1))).to(torch.float64)[None]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            v = _ms_ssim(x, y, data_range=255.0, size_average=True)
    finally:
        torch.set_num_threads(threads)
    return float(v)


def ms_ssim_db(value: float | None) -> float | None:
    """MS-SSIM on a dB scale, −10 · log10(1 − MS-SSIM), as CompressAI's plots show it."""
    if value is None:
        return None
    if value >= 1.0:
        return math.inf
    return -10.0 * math.log10(1.0 - value)


# ---------------------------------------------------------------------------------------------
# rate-distortion curves


def _sorted_curve(rates: Sequence[float], psnrs: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rates, dtype=np.float64)
    p = np.asarray(psnrs, dtype=np.float64)
    if r.shape != p.shape or r.ndim != 1:
        raise ValueError("rates and PSNRs must be 1-D sequences of equal length")
    if np.any(r <= 0) or not np.all(np.isfinite(r)) or not np.all(np.isfinite(p)):
        raise ValueError("rates must be positive and finite, PSNRs finite")
    order = np.argsort(p, kind="stable")
    return r[order], p[order]


def rate_at_psnr(rates: Sequence[float], psnrs: Sequence[float], target: float) -> float | None:
    """The rate a curve needs for ``target`` dB: linear interpolation of log-rate between the
    two measured points around the target (taking the cheapest crossing), None outside the
    measured PSNR range."""
    pts = sorted(zip(rates, psnrs))
    best = None
    for (r0, p0), (r1, p1) in zip(pts, pts[1:]):
        lo, hi = min(p0, p1), max(p0, p1)
        if not (lo <= target <= hi):
            continue
        if p1 == p0:
            r = r0
        else:
            t = (target - p0) / (p1 - p0)
            r = math.exp(math.log(r0) + t * (math.log(r1) - math.log(r0)))
        best = r if best is None else min(best, r)
    if best is None and len(pts) == 1 and pts[0][1] == target:
        best = pts[0][0]
    return best


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Derivatives of the monotone piecewise-cubic Hermite interpolant (Fritsch-Carlson, as in
    scipy's PchipInterpolator)."""
    h = np.diff(x)
    delta = np.diff(y) / h
    n = len(x)
    d = np.zeros(n)
    if n == 2:
        d[:] = delta[0]
        return d
    for k in range(1, n - 1):
        if delta[k - 1] * delta[k] > 0:
            w1 = 2 * h[k] + h[k - 1]
            w2 = h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])

    def end(h0, h1, m0, m1):
        s = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        if np.sign(s) != np.sign(m0):
            return 0.0
        if np.sign(m0) != np.sign(m1) and abs(s) > abs(3 * m0):
            return 3 * m0
        return s

    d[0] = end(h[0], h[1], delta[0], delta[1])
    d[-1] = end(h[-1], h[-2], delta[-1], delta[-2])
    return d


def _pchip_integral(x: np.ndarray, y: np.ndarray, a: float, b: float) -> float:
    """∫_a^b of the PCHIP interpolant through (x, y), x increasing, x[0] ≤ a ≤ b ≤ x[-1]."""
    d = _pchip_slopes(x, y)
    total = 0.0
    for k in range(len(x) - 1):
        lo, hi = max(a, x[k]), min(b, x[k + 1])
        if hi <= lo:
            continue
        h = x[k + 1] - x[k]
        # Hermite cubic on [x_k, x_k+1] in t = (x - x_k) / h, integrated in closed form.
        c0, c1 = y[k], d[k] * h
        c2 = 3 * (y[k + 1] - y[k]) - 2 * d[k] * h - d[k + 1] * h
        c3 = 2 * (y[k] - y[k + 1]) + d[k] * h + d[k + 1] * h

        def prim(t):
            return h * (c0 * t + c1 * t**2 / 2 + c2 * t**3 / 3 + c3 * t**4 / 4)

        total += prim((hi - x[k]) / h) - prim((lo - x[k]) / h)
    return total


def bd_rate(
    rates_anchor: Sequence[float],
    psnrs_anchor: Sequence[float],
    rates_test: Sequence[float],
    psnrs_test: Sequence[float],
    method: str = "cubic",
) -> float | None:
    """Bjøntegaard delta rate of the test curve against the anchor, in percent (negative: the
    test codec needs fewer bits for the same PSNR).

    method "cubic": the original VCEG-M33 method — a cubic polynomial fit of ln(rate) as a
    function of PSNR for each curve (≥ 4 points; fewer points get a lower degree), integrated over
    the PSNR interval both curves cover. method "pchip": the piecewise-cubic interpolation variant
    (JCTVC-L0242 style). Returns None when the curves' PSNR ranges do not overlap.
    """
    ra, pa = _sorted_curve(rates_anchor, psnrs_anchor)
    rt, pt = _sorted_curve(rates_test, psnrs_test)
    if len(ra) < 2 or len(rt) < 2:
        return None
    lo, hi = max(pa[0], pt[0]), min(pa[-1], pt[-1])
    if hi <= lo:
        return None
    la, lt = np.log(ra), np.log(rt)
    if method == "cubic":
        def integral(p, lr):
            deg = min(3, len(p) - 1)
            poly = np.polyint(np.polyfit(p, lr, deg))
            return np.polyval(poly, hi) - np.polyval(poly, lo)

        int_a, int_t = integral(pa, la), integral(pt, lt)
    elif method == "pchip":
        if np.any(np.diff(pa) <= 0) or np.any(np.diff(pt) <= 0):
            raise ValueError("the pchip method needs strictly increasing PSNRs along each curve")
        int_a, int_t = _pchip_integral(pa, la, lo, hi), _pchip_integral(pt, lt, lo, hi)
    else:
        raise ValueError(f"unknown BD-rate method {method!r} (cubic or pchip)")
    avg_diff = (int_t - int_a) / (hi - lo)
    return float((math.exp(avg_diff) - 1.0) * 100.0)
