"""``python -m experiments.bench SUBCOMMAND``.

Benchmarks: each prints ratios taken in one run (docs/performance.md).
"""

from anytime import cli

SUBCOMMANDS = {
  "trainer": (
    "experiments.bench.trainer",
    "trainer throughput vs the machine's matmul rate and vs PyTorch",
  ),
  "diagnose": (
    "experiments.bench.diagnose",
    "the trainer's parts against PyTorch's, one at a time",
  ),
  "averaging": (
    "experiments.bench.averaging",
    "cost of weight averaging on an AdamW update (150M-shaped tree)",
  ),
  "data": ("experiments.bench.data", "throughput of the data pipeline and of prepare"),
  "prepare": (
    "experiments.bench.prepare",
    "the Beam prepare pipeline (tokens/CPU-s, peak RSS) and grain's row reads vs the 150m step",
  ),
  "sweep_jobs": (
    "experiments.bench.sweep_jobs",
    "CPU sweep throughput: two runs pinned one per core vs one run on every core",
  ),
  "accelerator": (
    "experiments.bench.accelerator",
    "FLOPs, per-device memory and step time of 150m / 300m on paper",
  ),
  "recursion": (
    "experiments.bench.recursion",
    "compressed vs full exact risk recursion (theory, Figure 3 workload)",
  ),
}

if __name__ == "__main__":
  cli.dispatch("experiments.bench", __doc__, SUBCOMMANDS)
