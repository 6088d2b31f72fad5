"""Test-wide set-up: 8 fake CPU devices, so sharding tests see a real mesh.

XLA reads the flag once, when the backend starts, so it is set here before
any test module imports jax. Tests that need one device use a 1-device mesh.
"""

import os

os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
