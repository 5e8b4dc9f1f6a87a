import dataclasses
import inspect
from pathlib import Path

import pytest

from curation.errors import SightlineError
from pipelines.train_cmd import curated_version
from training.recipe import SECTIONS, TrainRecipe, load_train_recipe
from training.grpo.settings import GRPOStageConfig
from training.sft import SFTStageConfig

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path, text):
    p = tmp_path / "recipe.yaml"
    p.write_text(text)
    return p


def test_sections_overrides_typed_values_and_run_defaults(tmp_path):
    p = _write(tmp_path, "run:\n  name: t\n  data: data/x\n  seed: 7\nsft:\n  learning_rate: 1e-3\n  max_steps: 10\n"
                         "model:\n  dtype: bfloat16\n")
    recipe = load_train_recipe(p, ["sft.per_device_train_batch_size=4", "sft.learning_rate=3e-4",
                                   "sft.optim=sgd", "grpo.output_dir=elsewhere"])
    sft = recipe.sft
    assert isinstance(recipe, TrainRecipe) and isinstance(sft, SFTStageConfig)
    assert sft.learning_rate == 3e-4 and isinstance(sft.learning_rate, float)  # YAML 1.1 reads 3e-4 as a str
    assert (sft.per_device_train_batch_size, sft.max_steps, sft.optim) == (4, 10, "sgd")
    # the run's values reach the stages as defaults, before TRL's config is constructed
    assert sft.output_dir == "runs/t/sft" and sft.seed == 7 and recipe.grpo.seed == 7
    assert recipe.tiny_model.seed == 7 and recipe.difficulty.seed == 7
    assert recipe.grpo.output_dir == "elsewhere"  # ... which a recipe may still set
    assert recipe.difficulty.dtype == "bfloat16" and recipe.eval.dtype == "bfloat16"


def test_cpu_friendly_defaults_replace_trls():
    from trl import GRPOConfig

    sft, grpo = SFTStageConfig(output_dir="o"), GRPOStageConfig(output_dir="o")
    for cfg in (sft, grpo):
        assert cfg.bf16 is False and cfg.activation_checkpointing is False and cfg.gradient_checkpointing is False
        assert cfg.remove_unused_columns is False and cfg.report_to in ([], "none", ["none"])
        assert cfg.use_cpu is True  # no GPU on this machine
    assert sft.assistant_only_loss is True and sft.save_strategy == "no"
    assert grpo.ignore_data_skip is True and grpo.save_strategy == "steps" and grpo.save_steps == 25
    assert dataclasses.fields(GRPOConfig)  # TRL's own field names are the recipe's keys
    assert SFTStageConfig(output_dir="o", activation_checkpointing=True).activation_checkpointing is True


def test_difficulty_samples_as_grpo_unless_the_recipe_says_otherwise():
    """k, temperature, length and limit are set once, under grpo; a difficulty value overrides its own."""
    recipe = load_train_recipe(None, ["grpo.num_generations=4", "grpo.temperature=0.9",
                                      "grpo.max_completion_length=48", "grpo.limit=100"])
    d = recipe.difficulty
    assert (d.k, d.temperature, d.max_new_tokens, d.limit) == (4, 0.9, 48, 100)
    recipe = load_train_recipe(None, ["grpo.num_generations=4", "grpo.temperature=0.9", "grpo.limit=100",
                                      "difficulty.k=16", "difficulty.max_new_tokens=32", "difficulty.limit=null"])
    d = recipe.difficulty
    assert (d.k, d.temperature, d.max_new_tokens, d.limit) == (16, 0.9, 32, None)
    assert recipe.grpo.num_generations == 4 and recipe.grpo.max_completion_length != 32  # GRPO's own, unchanged
    mini = load_train_recipe("configs/train/mini.yaml")  # the shipped recipe sets them once, under grpo
    assert (mini.difficulty.k, mini.difficulty.temperature, mini.difficulty.max_new_tokens) == (
        mini.grpo.num_generations, mini.grpo.temperature, mini.grpo.max_completion_length) == (8, 1.0, 96)
    assert (mini.grpo.limit, mini.difficulty.limit) == (None, 256)  # ... and overrides the limit


def test_grpo_prompts_per_round_come_from_trls_batch_fields(tmp_path):
    recipe = load_train_recipe(None, ["grpo.per_device_train_batch_size=24", "grpo.num_generations=4",
                                      "grpo.gradient_accumulation_steps=2"])
    g = recipe.grpo
    assert (g.generation_batch_size, g.steps_per_generation, g.prompts_per_round) == (48, 2, 12)


@pytest.mark.parametrize("text,overrides,message", [
    ("sft:\n  lerning_rate: 0.1\n", [], r"unknown config key sft.lerning_rate; did you mean 'sft.learning_rate'\? \(known in sft: .*learning_rate"),
    ("", ["sft.lerning_rate=0.1"], "unknown config key sft.lerning_rate"),
    ("", ["grpo.prompts_per_step=8"], "unknown config key grpo.prompts_per_step"),  # the old name is gone
    ("trainer:\n  x: 1\n", [], "unknown config section 'trainer'"),
    ("", ["tiny_model.hidden=3"], "unknown config key tiny_model.hidden"),
    ("", ["tiny_model.text_hidden=100"], "tiny_model: text_hidden must be a multiple of 32"),
    ("", ["sft.max_steps=many"], "sft.max_steps: expected an integer"),
    ("", ["sft.bf16=1"], "sft.bf16: expected true or false"),
    ("", ["sft.lr_scheduler_type=cosin"], "sft: cosin is not a valid SchedulerType"),
    ("", ["learning_rate=1"], "unknown config section 'learning_rate'"),
    ("", ["run.stages=[grpo]"], "run: stages must include sft"),
    ("", ["run.stages=[sft, rl]"], r"run.stages\[1\]: expected one of sft, difficulty, grpo, eval"),
    ("sft: [1, 2]\n", [], "must be a mapping"),
    ("", ["grpo.sampler=vsa"], "grpo: unknown sampler 'vsa'; known samplers: mixed, uniform, vade, vas"),
    ("", ["grpo.sampler_params={l9: 1}"], r"grpo: unknown params \['l9'\] for sampler 'vade'"),
    ("", ["grpo.sampler_params={l1: 7}"], "grpo: l1 must be in"),
    ("", ["grpo.reward_funcs=[accuracy, lenght]"], "grpo: unknown reward 'lenght'; known rewards: accuracy, format"),
    ("", ["grpo.reward_funcs=[accuracy]"], "grpo: reward_weights has 2 weight"),
    ("", ["grpo.reward_funcs=[accuracy, length]"], "grpo: the length reward needs length_stages"),
    ("", ["grpo.num_generations=7", "grpo.per_device_train_batch_size=8"], "must be divisible by num_generations"),
    ("", ["grpo.limit=3", "grpo.per_device_train_batch_size=16", "grpo.num_generations=4"],
     "grpo: limit 3 is below the 4 prompts of one generation round"),
    ("", ["difficulty.k=0"], "difficulty: k, batch_size, max_new_tokens and workers must be >= 1"),
    ("", ["eval.table=train"], "eval.table: expected one of test, val"),
])
def test_bad_recipes_fail_with_one_clear_line(tmp_path, text, overrides, message):
    with pytest.raises(SightlineError, match=message) as e:
        load_train_recipe(_write(tmp_path, text), overrides)
    assert "\n" not in str(e.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(SightlineError, match="does not exist"):
        load_train_recipe(tmp_path / "nope.yaml")


@pytest.mark.parametrize("name", ["mini.yaml", "qwen2_5_vl_3b.yaml", "qwen2_5_vl_7b.yaml"])
def test_shipped_recipes_load(name):
    recipe = load_train_recipe(ROOT / "configs" / "train" / name)
    assert recipe.sft.max_length and recipe.grpo.sampler == ("uniform" if name == "mini.yaml" else "vade")
    assert len(recipe.grpo.reward_weights) == len(recipe.grpo.reward_funcs)
    if name == "mini.yaml":  # the values the mini recipe was measured with, under TRL's names
        assert (recipe.sft.max_steps, recipe.sft.per_device_train_batch_size, recipe.sft.learning_rate) == (1500, 16, 1.5e-3)
        assert (recipe.tiny_model.patch_size, recipe.tiny_model.merge_size) == (16, 1)  # 49 image tokens
        assert recipe.grpo.prompts_per_round == 8 and recipe.grpo.num_generations == 8
        assert (recipe.grpo.learning_rate, recipe.grpo.beta, recipe.grpo.lr_scheduler_type) == (2e-5, 0.0, "constant")
        assert recipe.grpo.reward_weights == [1.0, 0.1] and recipe.grpo.use_cpu is True
    else:  # 64 prompts x 8 completions on 8 GPUs: 16 per device x 8 x 4 accumulation steps
        g = recipe.grpo
        assert g.per_device_train_batch_size * 8 * g.gradient_accumulation_steps // g.num_generations == 64
        assert g.bf16 and g.activation_checkpointing and g.use_vllm and g.vllm_mode == "colocate"
        assert recipe.difficulty.dtype == "bfloat16"
        # a real judge for open rows: a local instruction model under the same models/ root, through vLLM
        j = recipe.judge
        assert (j.backend, j.temperature, j.dtype) == ("vllm", 0.0, "bfloat16") and j.enabled
        assert Path(j.model).parent == Path(recipe.model.path).parent and "Instruct" in Path(j.model).name
        assert j.judge_id == f"vllm:{j.model}@judge-v1"
    if name == "mini.yaml":
        assert recipe.judge.backend == "none"  # CPU default: no judge, open rows stay out of rl/val/test


def test_tiny_model_config_mirrors_the_builders_keywords():
    from training.tiny_model import TinyModelConfig, build_tiny_model

    params = {k: p.default for k, p in inspect.signature(build_tiny_model).parameters.items()
              if p.kind is p.KEYWORD_ONLY and k != "texts"}
    fields = {f.name: f.default for f in dataclasses.fields(TinyModelConfig)}
    assert fields == params, "add a build_tiny_model keyword to TinyModelConfig too (same name, same default)"


def test_show_config_prints_the_resolved_recipe(tmp_path, capsys, monkeypatch):
    import yaml

    from pipelines.cli import main as sightline

    monkeypatch.chdir(tmp_path)
    recipe = _write(tmp_path, "run: {name: t, seed: 3}\ngrpo: {sampler: vas, num_generations: 4}\n")
    assert sightline(["train", "show-config", "--config", str(recipe), "--set", "sft.max_steps=9"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert list(shown) == list(SECTIONS)
    assert shown["sft"]["max_steps"] == 9 and shown["sft"]["output_dir"] == "runs/t/sft" and shown["sft"]["seed"] == 3
    assert shown["grpo"]["sampler"] == "vas" and shown["grpo"]["generation_batch_size"] == 8
    assert shown["grpo"]["lr_scheduler_type"] == "linear"  # TRL's default, as TRL's docs say
    assert list(tmp_path.iterdir()) == [recipe]  # nothing written


def test_help_lists_the_recipe_sections(capsys):
    from pipelines.cli import main as sightline

    with pytest.raises(SystemExit):
        sightline(["train", "--help"])
    out = capsys.readouterr().out
    assert all(f"  {s} " in out for s in SECTIONS) and "show-config" in out
    with pytest.raises(SystemExit):
        sightline(["train", "grpo", "--help"])
    out = capsys.readouterr().out
    assert "recipe sections read: run, model, grpo" in out
    assert "grpo.sampler = 'vade'" in out and "any trl.GRPOConfig field" in out
    assert "grpo.per_device_train_batch_size" not in out  # TRL's fields are TRL's to document


def test_curated_version_steps_back_over_difficulty_versions(tmp_path):
    from curation.store.versions import Store

    store = Store(tmp_path / "d")
    store.write_version({}, config={"name": "curated"})
    store.write_version({}, parent=1, config={"stage": "difficulty"})
    assert curated_version(store, "latest") == 1 and curated_version(store, 2) == 1
