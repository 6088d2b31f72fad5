"""``python -m experiments.laws SUBCOMMAND``.

Schedule, LR and continued-pretraining laws on curves and logs (docs/laws.md).
"""

from anytime import cli

SUBCOMMANDS = {
  "fit": ("experiments.laws.fit", "fit a schedule law on some runs' logs and predict the others"),
  "lr": (
    "experiments.laws.lr",
    "optimal LR in (N, D): per-sweep optima, the power law, extrapolation",
  ),
  "theory": (
    "experiments.laws.theory",
    "annealing laws on exact theory curves: fit, predict held-out schedules",
  ),
  "continued": (
    "experiments.laws.continued",
    "continued pretraining: loss-compute and LR* laws, plan a continuation",
  ),
}

if __name__ == "__main__":
  cli.dispatch("experiments.laws", __doc__, SUBCOMMANDS)
