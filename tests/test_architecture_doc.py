"""docs/architecture.md against the tree: every module is named by its path, every path it names exists."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("schemas", "curation", "training", "pipelines")


def modules() -> list[str]:
    return sorted(p.relative_to(ROOT).as_posix() for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
                  if p.name != "__init__.py" and "__pycache__" not in p.parts)


def test_every_module_is_named_by_its_path():
    text = DOC.read_text()
    missing = [m for m in modules() if f"`{m}`" not in text]
    assert not missing, (f"docs/architecture.md names no line for {missing}: add `- `<path>` — what it owns` "
                         "under its package in 'Every module'")


def test_every_path_the_page_names_exists():
    text = DOC.read_text()
    named = set(re.findall(r"`([\w./-]+\.(?:py|md|yaml|toml|sh))`", text))
    named |= set(re.findall(r"`([\w./-]+\.(?:py|md|yaml|toml|sh))\b", text))
    # a path is from the repo root, or (in the stage table's rule column) from curation/ or another package
    bases = [ROOT] + [ROOT / p for p in PACKAGES] + [ROOT / "docs", ROOT / "tests" / "curation"]
    def exists(name: str) -> bool:
        if "/" not in name:  # a bare file name, after its folder was named: it must exist somewhere
            return any(ROOT.glob(f"**/{name}"))
        return any((b / name).exists() for b in bases)
    missing = sorted(n for n in named if not exists(n))
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"
    assert len(named) > 60


def test_the_check_would_see_a_missing_module():
    assert "curation/images/hashes.py" in modules() and "curation/dedup.py" not in modules()
