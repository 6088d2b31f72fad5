"""The LM trainer: model, sharding, data, train loop, eval, checkpoints, metrics.

Run it with ``python -m anytime.lm --config=configs/lm.py:model=nano --workdir=DIR``;
docs/lm.md describes the configs, the outputs and the tests.
"""
