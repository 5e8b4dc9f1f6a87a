"""The versioned store: ``<root>/vNNNN/<table>/part-*.parquet`` + ``manifest.json`` on a local folder or
any fsspec URL. ``versions`` reads, lists and verifies published versions (``Store``), ``writer``
publishes one (``Staging``/``StoreWriter``: shards in, manifest last, one rename or a claimed folder)
and ``fs`` is where a store lives (``Path`` or ``FsPath``, ``claim_folder``, ``copy_file``). ``card`` writes
the dataset card every version carries (``README.md``, the Hub's YAML header, made from the manifest) and
``export`` copies a version out as a plain Hub folder.
It keeps rows, it never judges them: it imports only ``curation.errors`` and ``schemas``, no rule.
"""
