"""Procedural synthetic source: verifiable visual problems and their program teachers.

Five families in the spirit of R1-V counting, FigureQA, CLEVR, and Geometry3K, each with a
difficulty ``level`` 1..3: ``counting``, ``chart``, ``spatial``, ``arithmetic``, ``geometry``.
``generate`` yields ``examples`` rows (schemas.tables.EXAMPLES) whose ``scene`` column feeds the
program teachers ``caption_from_scene`` and ``solution_from_scene``.

Owns the generator, the renderer and the program teachers' texts; imports nothing else from
``curation``.
"""
from curation.synthetic.generator import FAMILIES, generate, generate_one, scenes, sentence_gold
from curation.synthetic.render import render
from curation.synthetic.programs import caption_from_scene, corpus, solution_from_scene

__all__ = ["FAMILIES", "caption_from_scene", "corpus", "generate", "generate_one", "render", "scenes",
           "sentence_gold", "solution_from_scene"]
