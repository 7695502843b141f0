"""The training side: PLAsTiCC and BTS data, the model, training, compression, evaluation and reports.

May import :mod:`fink_t2.scoring` (the same preparation and runtime that serve alerts), TensorFlow
(lazily, the ``train`` extra) and nothing else of fink_t2: never the spark, tools or bench
subpackages (tests/test_layout.py checks).
"""
