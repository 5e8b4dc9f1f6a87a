"""`import curation` and `sightline --help` stay light: torch, transformers, vllm and Beam load only where
a command runs a model or a pipeline (lazy imports are for those heavy libraries, not for our own code).

Each check runs in a fresh interpreter, since this test process has imported everything already.
"""
import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "vllm", "apache_beam", "trl", "accelerate", "datasets")
# The one curation module whose job is loading models: it imports torch at the top, by design.
MODEL_MODULES = {"curation.generation.models"}


def heavy_after(code: str) -> list[str]:
    probe = code + f"\nimport json, sys\nprint(json.dumps(sorted(h for h in {HEAVY!r} if h in sys.modules)))\n"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_curation_module_imports_without_heavy_libraries():
    modules = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                     for p in (ROOT / "curation").rglob("*.py"))
    light = [m for m in modules if m not in MODEL_MODULES]
    assert "curation" in light and "curation.answers.verify" in light and len(light) > 40
    code = "import importlib\nfor m in %r:\n    importlib.import_module(m)" % (light,)
    assert heavy_after(code) == []


def test_sightline_help_and_light_subcommands_help_import_no_heavy_library():
    code = ("import contextlib, io\nfrom pipelines import cli\n"
            "for argv in (['--help'], ['data', '--help'], ['audit', '--help'], ['report', '--help'],\n"
            "             ['difficulty', '--help'], ['experiment', '--help']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
            "        try:\n            cli.main(argv)\n        except SystemExit:\n            pass")
    assert heavy_after(code) == []



# ---------------------------------------------------------------------------- lazy imports of our own code

OWN = ("curation", "training", "pipelines", "schemas")
# heavy at import: what an import inside a function may defer (the checks above, plus plotting and DuckDB)
DEFERRABLE = set(HEAVY) | {"matplotlib", "duckdb", "peft"}


def _modules() -> dict[str, tuple[ast.Module, list[str]]]:
    """Every module of ours: its syntax tree and its lines."""
    out = {}
    for pkg in OWN:
        for p in (ROOT / pkg).rglob("*.py"):
            name = ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            text = p.read_text()
            out[name] = (ast.parse(text, filename=str(p)), text.splitlines())
    return out


def _top_imports(tree: ast.Module) -> list[str]:
    names = []
    for node in tree.body:
        for n in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
            if isinstance(n, ast.Import):
                names += [a.name for a in n.names]
            elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
                names += [n.module] + [f"{n.module}.{a.name}" for a in n.names]
    return names


def _heavy(mods: dict[str, ast.Module]):
    """``heavy(module)``: importing it loads a deferrable library (through its own top-level imports, its
    parents' or its submodules'), or it is a package that defers its own contents (``__getattr__``)."""
    memo: dict[str, bool] = {}

    def heavy(name: str) -> bool:
        if name.split(".")[0] in DEFERRABLE:
            return True
        if name not in mods:
            return False
        if name not in memo:
            memo[name] = False  # a cycle reads as light
            tree = mods[name]
            lazy_package = any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in tree.body)
            parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
            memo[name] = lazy_package or any(heavy(m) for m in _top_imports(tree) + parents)
        return memo[name]

    return heavy


def test_imports_inside_functions_are_for_heavy_libraries_only():
    """An import of our own code inside a function defers only what is heavy to load (torch, transformers,
    vLLM, Beam, TRL, datasets, matplotlib, DuckDB): a light module is imported at the top, where a reader
    sees what a module depends on. An exception says why on the line above (``# lazy: <reason>``)."""
    mods = _modules()
    heavy = _heavy({name: tree for name, (tree, _) in mods.items()})
    found = []
    for name, (tree, lines) in mods.items():
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for n in ast.walk(fn):
                if isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
                    targets = [f"{n.module}.{a.name}" if f"{n.module}.{a.name}" in mods else n.module for a in n.names]
                elif isinstance(n, ast.Import):
                    targets = [a.name for a in n.names]
                else:
                    continue
                own = [t for t in targets if t.split(".")[0] in OWN]
                if not own or any(heavy(t) for t in own):
                    continue
                above = lines[n.lineno - 2].strip() if n.lineno >= 2 else ""
                if above.startswith("# lazy:") or "# lazy:" in lines[n.lineno - 1]:
                    continue
                found.append(f"{name}:{n.lineno} imports {', '.join(own)} inside {fn.name}()")
    assert found == [], "light modules imported inside functions (move them to the top):\n" + "\n".join(found)
