"""Benchmark of omikeys' key verification; run it with bench/run (see docs/performance.md)."""
