"""Fixtures shared by the pipeline tests: the taught tiny policy (``taught_policy_dir``) moved to tests/conftest.py,
where the GRPO judge test shares it."""
