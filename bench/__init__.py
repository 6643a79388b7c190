"""Throughput benchmarks: `python -m bench.throughput`."""
