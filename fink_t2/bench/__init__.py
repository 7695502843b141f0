"""The benchmark side: ``fink-t2 bench`` (alerts/s/core as Fink measures it) and the Fink-deployed baseline.

``inputs`` (replicated real alerts), ``modules`` (t2 and its peers as Spark columns), ``harness``
(the run), ``profiling``, ``targets``, ``report``; ``fink_deployed`` is t2 as Fink deploys it.
May import :mod:`fink_t2.scoring` and :mod:`fink_t2.spark`, nothing else of fink_t2 (tests/test_layout.py).
"""
