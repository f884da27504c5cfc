"""Benchmark harness: asynclog against its peers and a hand-written limit pipeline.

`python -m bench` runs every contender x scenario in a fresh subprocess (`bench.run_one`),
verifies what each one wrote, and writes `docs/benchmarks.md` and `docs/img/bench.png`.
"""
