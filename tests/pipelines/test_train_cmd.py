"""`sightline train ...` end to end on a tiny store: the recipe drives every stage."""
import json

import pytest

from pipelines.cli import main as sightline
from tests.training.conftest import _datasets_cache, _one_torch_thread, synthetic_store  # noqa: F401  (fixtures)


def _recipe(tmp_path, store, stages):
    text = f"""
run: {{name: t, data: {store.root}, out_dir: {tmp_path / 'run'}, threads: 1, stages: {stages}}}
model: {{path: {tmp_path / 'tiny'}}}
tiny_model: {{vocab_size: 400, text_hidden: 64, text_layers: 1, vision_depth: 1, vision_hidden: 32}}
sft: {{max_steps: 4, batch_size: 4, logging_steps: 1, warmup_steps: 0}}
difficulty: {{k: 2, limit: 8, max_new_tokens: 8, batch_size: 8}}
grpo: {{limit: 8, max_steps: 2, prompts_per_step: 4, num_generations: 2, max_completion_length: 8, save_steps: 0}}
eval: {{limit: 6, batch_size: 6, max_new_tokens: 8}}
"""
    p = tmp_path / "recipe.yaml"
    p.write_text(text)
    return p


def test_train_all_builds_the_model_trains_evaluates_and_summarises(synthetic_store, tmp_path, capsys):
    recipe = _recipe(tmp_path, synthetic_store, "[sft, eval]")
    assert sightline(["train", "all", "--config", str(recipe)]) == 0
    out = tmp_path / "run"
    summary = json.loads((out / "summary.json").read_text())
    assert (tmp_path / "tiny" / "config.json").is_file()
    assert summary["sft"]["steps"] == 4 and summary["version"] == 1
    assert set(summary["eval"]) == {"base", "sft", "majority"}
    assert all(e["n"] == 6 for e in summary["eval"].values())
    assert {"tiny_model", "sft", "eval", "total"} <= set(summary["minutes"])
    for png in ("eval.png", "curves.png"):
        assert (out / png).stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "overall" in printed and "majority" in printed and "summary.json" in printed


def test_train_errors_are_one_line(synthetic_store, tmp_path, capsys):
    recipe = _recipe(tmp_path, synthetic_store, "[sft]")
    assert sightline(["train", "sft", "--config", str(recipe), "--set", "sft.lerning_rate=1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("sightline train: error: unknown config key sft.lerning_rate") and "\n" not in err


@pytest.mark.slow
def test_train_all_with_difficulty_and_grpo(synthetic_store, tmp_path):
    pytest.importorskip("training.grpo")
    pytest.importorskip("pipelines.difficulty")
    from curation.store import Store

    store = Store(tmp_path / "data" / "copy")  # difficulty writes a new version: work on a private store
    store.write_version({t: synthetic_store.read_table(t) for t in ("sft", "rl", "test")}, config={})
    assert sightline(["train", "all", "--config", str(_recipe(tmp_path, store, "[sft, difficulty, grpo, eval]"))]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["difficulty_version"] == 2 and store.manifest(2)["parent"] == 1
    assert summary["grpo"]["steps"] == 2 and summary["grpo"]["prompts"] == 8
    assert set(summary["eval"]) == {"base", "sft", "grpo", "majority"}
