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
sft: {{max_steps: 4, per_device_train_batch_size: 4, logging_steps: 1, warmup_steps: 0}}
difficulty: {{k: 2, limit: 8, max_new_tokens: 8, batch_size: 8}}
grpo: {{limit: 8, max_steps: 2, per_device_train_batch_size: 8, num_generations: 2, max_completion_length: 8,
        save_strategy: "no"}}
eval: {{limit: 6, batch_size: 6, max_new_tokens: 8, image_probes: false}}
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


def _checkpointed_grpo_run(tmp_path) -> dict:
    """An earlier GRPO run's folder with a complete checkpoint: path -> bytes of every file in it."""
    from training.grpo.resume import SAMPLER_STATE, START

    grpo = tmp_path / "run" / "grpo"
    ckpt = grpo / "checkpoint-20"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text('{"global_step": 20}')
    (ckpt / "model.safetensors").write_bytes(bytes(range(256)) * 4)
    (ckpt / SAMPLER_STATE).write_text('{"global_step": 20, "rounds_generated": 20, "pending": []}')
    (grpo / START).write_text('{"sampler": "vade"}')
    (grpo / "metrics.jsonl").write_text('{"step": 20, "reward": 0.5}\n')
    return {p: p.read_bytes() for p in grpo.rglob("*") if p.is_file()}


@pytest.mark.parametrize("command,override,message", [
    ("grpo", "grpo.sampler=vsa", "grpo: unknown sampler 'vsa'; known samplers: mixed, uniform, vade, vas"),
    ("all", "grpo.sampler=vsa", "grpo: unknown sampler 'vsa'; known samplers: mixed, uniform, vade, vas"),
    ("grpo", "grpo.smapler=vas", "unknown config key grpo.smapler; did you mean 'grpo.sampler'? (known in grpo: "),
    ("sft", "sft.lerning_rate=1", "unknown config key sft.lerning_rate; did you mean 'sft.learning_rate'? (known in sft: "),
])
def test_a_mistyped_recipe_fails_in_one_line_and_touches_nothing(synthetic_store, tmp_path, capsys, command,
                                                                 override, message):
    recipe = _recipe(tmp_path, synthetic_store, "[sft, difficulty, grpo, eval]")
    before = _checkpointed_grpo_run(tmp_path)
    assert sightline(["train", command, "--config", str(recipe), "--set", override]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"sightline train: error: {message}") and "\n" not in err
    grpo = tmp_path / "run" / "grpo"
    assert {p: p.read_bytes() for p in grpo.rglob("*") if p.is_file()} == before  # the checkpoint is untouched
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["grpo"]  # no other stage started
    assert not (tmp_path / "tiny").exists() and synthetic_store.versions() == [1]


@pytest.mark.slow
def test_train_all_with_difficulty_and_grpo(synthetic_store, tmp_path):
    from curation.store.versions import Store

    store = Store(tmp_path / "data" / "copy")  # difficulty writes a new version: work on a private store
    store.write_version({t: synthetic_store.read_table(t) for t in ("sft", "rl", "test")}, config={})
    assert sightline(["train", "all", "--config", str(_recipe(tmp_path, store, "[sft, difficulty, grpo, eval]"))]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["difficulty_version"] == 2 and store.manifest(2)["parent"] == 1
    assert summary["grpo"]["steps"] == 2 and summary["grpo"]["prompts"] == 8
    assert summary["config"]["grpo"]["sampler"] == "vade" and summary["config"]["grpo"]["generation_batch_size"] == 8
    metrics = [json.loads(line) for line in (tmp_path / "run" / "grpo" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in metrics if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2]
    assert all(r["entropy"] >= 0 and "clip_ratio/region_mean" in r and "sampler/effective_group_ratio" in r
               for r in steps)
    assert set(summary["eval"]) == {"base", "sft", "grpo", "majority"}
