"""Benchmarks: each module prints a markdown table (``python -m benchmarks.<name>``)."""
