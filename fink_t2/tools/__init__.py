"""Offline tools: the batch scorer of archived alerts (``batch``, ``unify``) and the ``fink-t2`` command (``cli``).

May import :mod:`fink_t2.scoring` and :mod:`fink_t2.spark` (the Spark engine); the CLI imports
:mod:`fink_t2.training` and :mod:`fink_t2.bench` lazily, inside the sub-commands that need them
(tests/test_layout.py checks).
"""
