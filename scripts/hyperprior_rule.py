"""Compare hyperprior model cards by the numbers the shipping rule in docs/MODELS.md uses.

    python scripts/hyperprior_rule.py gencodec/weights/hyperprior.json /work/runs/hp192g.json

For each card: the exported model's validation BD-rate against JPEG over every level
(``validation.exact.bd_rate_vs_jpeg``) and its exact RD cost over levels 1-6: the mean over those
levels of ``lambda * 255**2 * 10**(-psnr / 10) + bpp``, at the config's lambdas, on the card's
validation crops. The rule ships a candidate only if its BD-rate is below the shipped model's and its
RD cost is at most the shipped model's. Compare only cards validated on the same crops (the card's
``validation_crops``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

LEVELS = 6  # the RD cost's levels: the ladder's lower six, the ones every model so far has


def numbers(card: dict) -> tuple[float, float]:
    """-> (BD-rate against JPEG in percent, RD cost over levels 1-6)."""
    exact = card["validation"]["exact"]
    lambdas = card["config"]["lambdas"]
    cost = sum(lambdas[q - 1] * 255**2 * 10 ** (-exact[f"psnr_q{q}"] / 10) + exact[f"bpp_q{q}"]
               for q in range(1, LEVELS + 1)) / LEVELS
    return float(exact["bd_rate_vs_jpeg"]), cost


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("shipped", type=Path, help="the shipped model's card (.json)")
    ap.add_argument("candidates", type=Path, nargs="+", help="candidate cards")
    args = ap.parse_args()
    base_bd, base_cost = numbers(json.loads(args.shipped.read_text()))
    print(f"{args.shipped}: BD-rate vs JPEG {base_bd:+.2f} %, RD cost 1-6 {base_cost:.4f} (shipped)")
    for path in args.candidates:
        bd, cost = numbers(json.loads(path.read_text()))
        verdict = "meets the rule" if bd < base_bd and cost <= base_cost else "does not meet the rule"
        print(f"{path}: BD-rate vs JPEG {bd:+.2f} %, RD cost 1-6 {cost:.4f}: {verdict}")


if __name__ == "__main__":
    main()
