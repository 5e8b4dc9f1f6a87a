"""The difficulty pass below the pipeline: its rules, k rollouts per rl prompt -> ``n_correct`` -> pass
rate (``rules``), and publishing a child version that rewrites some tables and copies the rest
(``derive``). May import ``curation.answers`` (the verifier), ``curation.store``, ``curation.rejects``
and ``curation.errors``.
"""
