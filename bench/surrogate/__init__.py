"""A surrogate benchmark of our own problem (issue 18): real learning curves of the
``kermany`` space, a model of them, and searches simulated on it with N workers.

- :mod:`bench.surrogate.blackbox`: the stored curves (one JSON file under bench/figures/);
- :mod:`bench.surrogate.collect`: collects them (resumable, in pieces);
- :mod:`bench.surrogate.model`: configuration -> learning curve and epoch cost;
- :mod:`bench.surrogate.simulator`: a simulated clock, N workers, the product's searcher
  and Ray Tune's ASHA driven directly;
- :mod:`bench.surrogate.run`: the tables of bench/RESULTS.md (``--quick`` in the tests).
"""
