"""``python -m experiments.mup SUBCOMMAND``.

muP: coordinate check, LR transfer across width, per-module LRs, growth (docs/mup.md).
"""

from anytime import cli

SUBCOMMANDS = {
  "coord_check": ("experiments.mup.coord_check", "coordinate check (Tensor Programs V, section 5)"),
  "lr_transfer": (
    "experiments.mup.lr_transfer",
    "does the optimal LR transfer across width? muP vs standard",
  ),
  "module_lr": (
    "experiments.mup.module_lr",
    "does per-module LR tuning matter on top of a tuned global LR?",
  ),
  "growth": (
    "experiments.mup.growth",
    "width growth: the grown model's loss against the small model's",
  ),
}

if __name__ == "__main__":
  cli.dispatch("experiments.mup", __doc__, SUBCOMMANDS)
