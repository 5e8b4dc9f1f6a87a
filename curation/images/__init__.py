"""Images and their copies: bounded decoding of untrusted bytes (``decode``), the validate stage's rule
(``validate``), 64-bit perceptual hashes and their multi-index bands (``hashes``), the pixel verdict on a
candidate pair of thumbnails (``near_copy``, batched in ``near_copy_batch``) and the dedup rule as the
curate graph runs it, candidates -> confirmed near-copies -> split groups -> duplicates (``duplicates``).
May import ``curation.errors``, ``curation.rejects`` and ``curation.split`` (the group key); never the
store, the sources, the teachers or the verifier.
"""
