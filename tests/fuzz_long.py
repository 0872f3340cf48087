"""The long fuzzing profile behind docs/RELIABILITY.md: many mutations of every codec's frames,
each decoded under an address-space limit and a time limit, counted by codec, class and outcome.

    python tests/fuzz_long.py --cases 400 --out fuzz.json [--codecs png,xz] [--memory-gib 8] [--seconds 60]

Every case must end as "restored" (exactly the sample) or "refused" (a one-line GencodecError);
a foreign exception, a silent corruption, a hang (over --seconds) or running out of the address
space counts as a failure and is listed. Exit status 1 if any failure.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import signal
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fuzz_frames as ff  # noqa: E402


class Hang(Exception):
    pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=400, help="semantic edits and as many damages, per codec")
    ap.add_argument("--codecs", default=",".join(ff.NAMES[:-1] + list(ff.VARIANTS)))
    ap.add_argument("--memory-gib", type=float, default=8.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    import torch

    import gencodec
    from gencodec.models.hyperprior import Hyperprior, HyperpriorConfig

    limit = int(args.memory_gib * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    codecs = [c for c in args.codecs.split(",")
              if c in ff.VARIANTS or c == "hyperprior" or gencodec.get_codec(c).available]
    torch.manual_seed(0)
    hp = "/tmp/gencodec-fuzz-hp.safetensors"
    Hyperprior(HyperpriorConfig(N=8, M=8, lambdas=(0.01, 0.04))).export().save(hp)
    samples = ff.make_samples(codecs, hp)

    def on_alarm(signum, frame):
        raise Hang()

    signal.signal(signal.SIGALRM, on_alarm)
    rnd = random.Random(args.seed)
    counts: Counter = Counter()
    failures = []
    t0 = time.time()
    for s in samples:
        header = ff.container.read_header(s.blob)
        for i in range(2 * args.cases):
            if i % 2 == 0:
                field = rnd.choice(ff.FIELDS)
                cls = f"edit:{field}"
                try:
                    blob = ff.edit_header(s.blob, field, ff.header_values(field, header, rnd))
                except Exception:  # noqa: BLE001 - a value the frame format cannot hold
                    counts[(s.codec, cls, "unframable")] += 1
                    continue
            else:
                how = rnd.choice(ff.DAMAGE)
                cls = f"damage:{how}"
                blob = ff.damage(s.blob, how, rnd)
            signal.setitimer(signal.ITIMER_REAL, args.seconds)
            try:
                result = ff.outcome(blob, s)
            except Hang:
                result = "HANG"
            except MemoryError:
                result = "OUT OF MEMORY"
            except AssertionError as e:
                result = "FAILURE"
                failures.append(dict(codec=s.codec, cls=cls, error=str(e)[:300]))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if result in ("HANG", "OUT OF MEMORY"):
                failures.append(dict(codec=s.codec, cls=cls, error=result))
            counts[(s.codec, cls, result)] += 1
    report = dict(
        cases=sum(counts.values()), seconds=round(time.time() - t0, 1), memory_limit_gib=args.memory_gib,
        time_limit_s=args.seconds, seed=args.seed, machine=f"{platform.machine()} {platform.processor()}",
        gencodec=gencodec.__version__,
        counts=[dict(codec=c, cls=k, outcome=o, n=n) for (c, k, o), n in sorted(counts.items())],
        failures=failures,
    )
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    by_codec = Counter()
    for (c, _, o), n in counts.items():
        by_codec[(c, o)] += n
    for (c, o), n in sorted(by_codec.items()):
        print(f"{c:20s} {o:14s} {n}")
    print(f"{report['cases']} cases in {report['seconds']} s, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
