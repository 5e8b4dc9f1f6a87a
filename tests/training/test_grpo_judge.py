"""GRPO with an open-answer share: the recipe's judge scores the open rows inside TRL's GRPOTrainer.

Real parts throughout: a store version written by our store, counting prompts half of whose golds are
sentences (``answer_type: open``, as a chat-style set writes them), the tiny policy taught to answer
in the format (``tests.policy_model``: "3" about two thirds of the time, "4" one third), real GRPO
steps, and the program judge. A spy wraps the reward function only to read what it was given and gave.
"""
from __future__ import annotations

import json

import pytest

from curation.loader import build
from curation.generation.judge import JudgeItem, JudgeSpec, program_verdict
from curation.store.versions import Store
from tests.training.conftest import synthetic_tables
from training.grpo import train as grpo_train
from training.grpo.settings import GRPOStageConfig
from training.rewards import accuracy_reward, completion_text, prompt_question
from training.run_config import ModelConfig


def open_share_store(root) -> Store:
    """8 counting prompts in rl, golds 3 or 4; every other one open with a sentence gold."""
    tables = synthetic_tables(8, 2, seed=5, families=["counting"])
    for i, r in enumerate(tables["rl"]):
        gold = "3" if i % 4 < 2 else "4"
        if i % 2 == 0:
            r.update(solution=f"Looking at the picture, there are {gold} shapes in all.", answer_type="open")
        else:
            r.update(solution=gold, answer_type="integer")
    store = Store(root)
    store.write_version(tables, config={"source": "tests/training/test_grpo_judge.py"})
    return store


def test_grpo_trains_with_the_judge_reward_on_open_rows(taught_policy_dir, tmp_path, monkeypatch, capsys):
    store = open_share_store(tmp_path / "data" / "open")
    out = tmp_path / "run"
    cfg = build(GRPOStageConfig, {"output_dir": str(out), "max_steps": 3, "per_device_train_batch_size": 16,
                                  "num_generations": 4, "max_completion_length": 32, "learning_rate": 1e-5,
                                  "save_strategy": "no", "seed": 0, "sampler": "uniform",
                                  "reward_funcs": ["accuracy", "format"], "reward_weights": [1.0, 0.1]}, "grpo")
    seen: list[tuple[dict, list[float]]] = []
    real_build = grpo_train.build_trainer

    def capture(*args, **kw):
        trainer = real_build(*args, **kw)
        judged = trainer.reward_funcs[0]
        assert judged.__name__ == "judge_accuracy" and judged.stats["judge"] == "program@judge-v1"

        def spy(**columns):
            rewards = judged(**columns)
            seen.append((columns, rewards))
            return rewards

        spy.stats = judged.stats
        trainer.reward_funcs[0] = spy
        return trainer

    monkeypatch.setattr(grpo_train, "build_trainer", capture)
    result = grpo_train.run(cfg, ModelConfig(path=str(taught_policy_dir)), store.root,
                            judge=JudgeSpec(backend="program"))
    assert result["steps"] == 3 and len(seen) == 3  # one reward call per generation round

    open_rows = judged_right = 0
    for columns, rewards in seen:
        rule = accuracy_reward(columns["completions"], columns["solution"], answer_type=columns["answer_type"])
        for i, (kind, reward) in enumerate(zip(columns["answer_type"], rewards, strict=True)):
            if kind != "open":
                assert reward == rule[i]  # closed rows: the rule verdict, unchanged
                continue
            open_rows += 1
            assert rule[i] == 0.0  # no rule scores a sentence gold (needs_judge)
            item = JudgeItem("k", prompt_question(columns["prompts"][i]), columns["solution"][i],
                             completion_text(columns["completions"][i]))
            assert reward == (1.0 if program_verdict(item) == "judged_correct" else 0.0)
            judged_right += reward == 1.0
    assert open_rows >= 12 and judged_right > 0  # a reward no rule could have given

    judge = result["judge"]
    assert judge["judge"] == "program@judge-v1" and judge["calls"] > 0 and judge["cache_hits"] > 0
    assert judge["calls"] + judge["cache_hits"] == open_rows  # every open completion: judged once or cached
    assert judge["calls_per_s"] > 0 and judge["cache_hit_rate"] == pytest.approx(judge["cache_hits"] / open_rows,
                                                                                 abs=1e-4)
    assert json.loads((out / "grpo_result.json").read_text())["judge"] == judge
    assert json.loads((out / "recipe.json").read_text())["judge"]["backend"] == "program"
    printed = capsys.readouterr().out
    assert f"grpo: judge program@judge-v1: {judge['calls']} calls" in printed and "cache hit rate" in printed
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in steps if "judge/calls" in r]
    assert len(logged) == 3 and sum(r["judge/calls"] for r in logged) == judge["calls"]
    assert all(0.0 <= r["judge/cache_hit_rate"] <= 1.0 for r in logged)
    assert all("rewards/judge_accuracy/mean" in r for r in steps if "reward" in r)
