"""``python -m experiments.linreg SUBCOMMAND``.

Anytime schedules in linear regression, exactly (theory/, docs/theory.md).
"""

from anytime import cli

SUBCOMMANDS = {
  "demo": (
    "experiments.linreg.demo",
    "one anytime run vs cosine tuned per horizon (part of make demo)",
  ),
  "fig3": (
    "experiments.linreg.fig3",
    "the paper's Figure 3: horizon-free schedules with Polyak averaging",
  ),
  "horizons": (
    "experiments.linreg.horizons",
    "anytime vs horizon-tuned cosine (the paper's Figures 1 and 2, in theory)",
  ),
  "mc": (
    "experiments.linreg.mc",
    "exact recursion vs Monte Carlo: z-scores at every recorded step",
  ),
  "slopes": ("experiments.linreg.slopes", "measured risk exponents vs theory.rates predictions"),
}

if __name__ == "__main__":
  cli.dispatch("experiments.linreg", __doc__, SUBCOMMANDS)
