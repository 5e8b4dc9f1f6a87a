"""Answers and their verdicts: reading short answers as people write them (letters, yes/no, text:
``readers``; numbers, units, fractions, surds: ``numeric``), options written inside a question
(``options``), math-verify behind a time bound (``math_check``) and the one verifier that curation,
rewards, the difficulty pass and evaluation all call (``verify``). Pure string and math code: it imports
nothing else from ``curation`` (only the standard library, math-verify and sympy).
"""
