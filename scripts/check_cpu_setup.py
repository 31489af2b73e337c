"""Exit 1 unless this environment's torch is a CPU build and no nvidia-* package is installed
(run at the end of scripts/setup.sh and by .ci/run)."""
import importlib.metadata as md
import sys

import torch

cuda = sorted(d.metadata["Name"] for d in md.distributions() if d.metadata["Name"].lower().startswith("nvidia-"))
if not torch.__version__.endswith("+cpu") or cuda:
    sys.exit(f"error: expected a CPU-only set-up, found torch {torch.__version__} and {len(cuda)} nvidia-* "
             f"package(s) {cuda[:3]}; see scripts/cpu-constraints.txt")
print(f"CPU-only set-up: torch {torch.__version__}, no nvidia-* packages")
