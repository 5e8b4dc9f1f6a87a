"""Pure curation logic (no Beam), as rooms: ``sources`` (real datasets as rows or rejects), ``synthetic``
(the procedural generator and its program teachers), ``images`` (decoding, hashes, near-copies,
duplicate groups), ``answers`` (readers and the verifier), ``generation`` (prompts, models, teachers,
rollouts, trace assembly), ``store`` (versions on disk or object storage) and ``difficulty`` (the pass
rate rules and child versions), plus single-file rules: ``split``, ``decontam``, ``accounting``,
``rejects``, ``recipe`` (the data recipe), ``config`` (the typed recipe loader) and ``errors``. Each
room's ``__init__`` says what it owns and what it may import; ``pyproject.toml``'s import-linter
contracts check it.
"""
