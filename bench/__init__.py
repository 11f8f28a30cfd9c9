"""splitbench's engine and experiment machinery.

Kept import-light on purpose: policies and quantizers import bench.registry, so importing
this package must not pull in the engine, MLflow or Optuna.
"""

__version__ = "0.1.0"
