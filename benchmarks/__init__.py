"""The benchmarks, one package each, run from the repository root as `python -m benchmarks.<name>.run`."""
