"""Generating text with teachers and policies: the versioned prompts, the student's turn included
(``prompts``), model loading and batched generation for Qwen2-VL-family checkpoints (``models``), the
generation backends behind one interface (``teachers``: program, transformers, vllm), batched calls with
per-row retry for every sampler (``rollouts``), the reasoner's trace rewrite and selection
(``distill``) and the rows every table gets from one example and its teachers' outputs (``assemble``).
May import ``curation.answers`` (verdicts on traces), ``curation.synthetic`` (the program teachers'
scenes), ``curation.rejects`` and ``curation.errors``; never the store, the images room or the sources.
"""
