"""Subprocess for the exactness tests: prints JSON {variation: sha256} for the tables of the
shipped pixelcnn model (and the float control) under this process's environment
(ATEN_CPU_CAPABILITY, OMP_NUM_THREADS, MKL_CBWR, OPENBLAS_CORETYPE are set by the parent).
Usage: python _exact_child.py H W SEED"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from exact_harness import all_hashes, harness_image  # noqa: E402

if __name__ == "__main__":
    h, w, seed = (int(a) for a in sys.argv[1:4])
    print(json.dumps(all_hashes(harness_image(h, w, seed))))
