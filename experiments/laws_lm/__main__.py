"""``python -m experiments.laws_lm SUBCOMMAND``.

The laws on real LM runs trained here, and their pre-registered tests (docs/laws.md).
"""

from anytime import cli

SUBCOMMANDS = {
  "grid": (
    "experiments.laws_lm.grid",
    "the dedicated small grid: train, fit, check (LR and schedule laws)",
  ),
  "long": (
    "experiments.laws_lm.long",
    "pre-registered forecast of held-out schedules from 4x longer runs",
  ),
  "replicate": (
    "experiments.laws_lm.replicate",
    "pre-registered replication of the 32-unit forecast on new seeds",
  ),
  "area": (
    "experiments.laws_lm.area",
    "is the LR area the clock? the shorter cosine's miss traced",
  ),
  "clock": (
    "experiments.laws_lm.clock",
    "pre-registered test of the eta**p clock at a new peak LR",
  ),
  "repeat": (
    "experiments.laws_lm.repeat",
    "is data repetition what the laws miss? two pre-registered tests",
  ),
  "gain": (
    "experiments.laws_lm.gain",
    "pre-registered test of the reducible-gain law at peak 5e-3",
  ),
  "cap": (
    "experiments.laws_lm.cap",
    "pre-registered test of the reducible-gain law with gamma <= 1.5",
  ),
  "w64": ("experiments.laws_lm.w64", "pre-registered checks of the laws at width 64"),
}

if __name__ == "__main__":
  cli.dispatch("experiments.laws_lm", __doc__, SUBCOMMANDS)
