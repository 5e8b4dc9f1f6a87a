"""The difficulty pass below the pipeline: its settings (``settings.DifficultyConfig``), its rules, k
rollouts per rl prompt -> ``n_correct`` -> pass rate (``rules``), the policy's rollouts kept as traces
and sft rows (``policy``: rejection sampling, the prompts a pass rolls out), and publishing a child
version that rewrites some tables, adds rows and copies the rest (``derive``). May import
``curation.answers`` (the verifier), ``curation.generation`` (the teacher spec, the trace layout and
the curate pipeline's selection rule), ``curation.store``, ``curation.rejects`` and ``curation.errors``.
"""
