"""`import curation` and `sightline --help` stay light: torch, transformers, vllm and Beam load only where
a command runs a model or a pipeline (lazy imports are for those heavy libraries, not for our own code).

Each check runs in a fresh interpreter, since this test process has imported everything already.
"""
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

