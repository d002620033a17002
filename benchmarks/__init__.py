"""The benchmarks, each a package run as `python -m benchmarks.<name>.run`, and the fair-comparison protocol they
share (`benchmarks.protocol`)."""
