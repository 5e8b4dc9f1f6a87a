"""The loop's recipes: both shipped ones load and check every round's train recipe; mistakes fail in one line."""
import pytest

from pipelines.cli import main as sightline
from pipelines.loop import load_loop, round_recipe


@pytest.mark.parametrize("name", ["mini.yaml", "qwen2_5_vl_3b.yaml"])
def test_shipped_loop_recipes_check(name, capsys):
    assert sightline(["loop", "--config", f"configs/loop/{name}", "--check"]) == 0
    plan = capsys.readouterr().out.splitlines()
    loop = load_loop(f"configs/loop/{name}")
    assert len(plan) == loop.rounds and plan[0].startswith("round 1: SFT on levels")
    assert all(line.startswith(f"round {r}: SFT on the previous round's policy") for r, line in enumerate(plan[1:], 2))


def test_mini_loop_round_recipes():
    """Round 1 is the cold start of the train recipe (level-1 slice, val early stopping); round 2 drops the
    level slice and continues gently, and every round writes into its own folder."""
    loop = load_loop("configs/loop/mini.yaml")
    one, two = round_recipe(loop, 1), round_recipe(loop, 2)
    assert one.sft.levels == [1] and one.sft.val_every and one.sft.early_stopping_patience
    assert two.sft.levels is None and two.sft.learning_rate < one.sft.learning_rate
    assert two.sft.lr_scheduler_type == "constant" and two.sft.warmup_steps == 0
    assert one.run.folder != two.run.folder and one.run.folder.name == "round1"
    assert one.grpo.limit is None  # RL reads every rl prompt, levels without traces included


def test_loop_recipe_mistakes(capsys):
    assert sightline(["loop", "--config", "configs/loop/mini.yaml", "--set", "rounds=0", "--check"]) == 1
    assert "rounds must be >= 1" in capsys.readouterr().err
    assert sightline(["loop", "--config", "configs/loop/mini.yaml", "--set", "rounds=1", "--check"]) == 1
    assert "round_overrides has 2 lists for 1 rounds" in capsys.readouterr().err
    assert sightline(["loop", "--config", "configs/loop/mini.yaml", "--set", "round_overrides=[[sft.nosuch=1]]",
                      "--check"]) == 1
    assert "nosuch" in capsys.readouterr().err
    with pytest.raises(Exception, match="next_prompts"):
        load_loop("configs/loop/mini.yaml", ["next_prompts.levls=[2]"])
