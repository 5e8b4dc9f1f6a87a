"""GRPO with Sightline's prompt samplers inside TRL's GRPOTrainer: a real tiny Qwen2-VL, real gradient steps."""
from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from curation.loader import build
from training.grpo import train as grpo_train
from training.grpo.settings import GRPOStageConfig
from training.grpo.resume import SAMPLER_STATE, latest_checkpoint
from training.grpo.train import build_trainer, prior_counts
from training.grpo.trainer_hook import PromptRoundSampler
from training.rewards import accuracy_reward, completion_text
from training.run_config import ModelConfig
from training.sampling import CORRECT_THRESHOLD


def parity_reward(completions, **kwargs):
    """1.0 for an odd number of characters: a reward an untrained model gets right half the time (mixed groups)."""
    return [float(len(completion_text(c)) % 2) for c in completions]


def _values(out, **kw) -> dict:
    """A recipe's ``grpo`` section: 4 prompts x 4 completions per step (TRL's field names)."""
    base = {"output_dir": str(out), "max_steps": 2, "per_device_train_batch_size": 16, "num_generations": 4,
            "max_completion_length": 12, "learning_rate": 1e-2, "save_strategy": "no", "seed": 0,
            "reward_weights": None}
    return {**base, **kw}


def _config(out, **kw) -> GRPOStageConfig:
    return build(GRPOStageConfig, _values(out, **kw), "grpo")


def _spy_updates(trainer) -> list[dict]:
    calls = []
    real = trainer.prompt_sampler.update

    def update(results, completions=None):
        calls.append({"results": copy.deepcopy(results), "completions": copy.deepcopy(completions)})
        real(results, completions)

    trainer.prompt_sampler.update = update
    return calls


# ---------------------------------------------------------------------------- the index stream


class Sequential:
    """A deterministic stand-in for a prompt sampler: ids in dataset order, round after round."""

    def __init__(self, ids):
        self.ids, self.pos = list(ids), 0

    def next_batch(self, k):
        out = [self.ids[(self.pos + i) % len(self.ids)] for i in range(k)]
        self.pos += k
        return out


@pytest.mark.parametrize("n,g,b,r", [(7, 2, 3, 4), (12, 3, 4, 1), (8, 4, 2, 2), (5, 1, 5, 3)])
def test_index_stream_matches_trl_repeat_sampler(n, g, b, r):
    from trl.trainer.utils import RepeatSampler

    ids = [f"q{i}" for i in range(n)]
    ours = PromptRoundSampler(Sequential(ids), ids, mini_repeat_count=g, batch_size=b, repeat_count=r)
    trl = RepeatSampler(ids, mini_repeat_count=g, batch_size=b, repeat_count=r, shuffle=False)
    assert list(ours) == list(trl)
    assert len(ours) == len(trl)


def test_index_stream_draws_lazily_and_replays_pending_rounds():
    ids = [f"q{i}" for i in range(6)]
    s = PromptRoundSampler(Sequential(ids), ids, mini_repeat_count=2, batch_size=2, repeat_count=1,
                           pending=[["q5", "q3"]], first_round=4)
    it = iter(s)
    assert [next(it) for _ in range(4)] == [5, 5, 3, 3]  # the pending round first, no draw yet
    assert s.prompt_sampler.pos == 0
    next(it)
    assert s.prompt_sampler.pos == 2  # the next round is drawn when its first index is asked for
    assert s.pending(rounds_generated=4) == [["q5", "q3"], ["q0", "q1"]]
    assert s.pending(rounds_generated=5) == [["q0", "q1"]]


# ---------------------------------------------------------------------------- inside GRPOTrainer


@pytest.mark.parametrize("sampler", ["uniform", "vade", "vas"])
def test_samplers_drive_grpo_and_learn_from_its_rewards(sampler, tiny_model_dir, synthetic_store, tmp_path):
    cfg = _config(tmp_path / sampler, sampler=sampler, beta=0.04)
    assert cfg.prompts_per_round == 4
    trainer = build_trainer(cfg, ModelConfig(path=str(tiny_model_dir)), synthetic_store.root,
                            reward_funcs=[accuracy_reward, parity_reward])
    assert trainer.processing_class.tokenizer.padding_side == "left"  # else image-token types misalign
    fresh = copy.deepcopy(trainer.prompt_sampler)  # before the spy goes in
    calls = _spy_updates(trainer)
    before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    trainer.train()

    # real gradient steps on a real reward signal
    changed = [k for k, v in trainer.model.named_parameters() if not torch.equal(before[k], v.detach())]
    assert changed, "two GRPO steps with mixed-reward groups left every weight unchanged"
    logs = [json.loads(line) for line in (tmp_path / sampler / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in logs if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for r in steps:
        assert 0.0 <= r["rewards/accuracy_reward/mean"] <= 1.0 and 0.0 <= r["rewards/parity_reward/mean"] <= 1.0
        assert 0.0 <= r["sampler/effective_group_ratio"] <= 1.0 and 0.0 <= r["sampler/pass_rate"] <= 1.0
        assert r["sampler/selection_entropy"] > 0
        # TRL's per-step diagnostics reach metrics.jsonl: KL to the reference (beta > 0), entropy, clipping
        assert r["kl"] >= 0 and r["entropy"] > 0 and 0.0 <= r["clip_ratio/region_mean"] <= 1.0

    # one update per generation round, for exactly the ids the sampler drew for it, G rewards each
    assert len(calls) == 2
    drawn = trainer.round_sampler.drawn  # rounds not yet generated; the first two were forgotten
    assert trainer.rounds_generated == 2 and trainer.prompt_sampler.step == 3 and len(drawn) == 1
    # the dataloader prefetches one round: draw 1, draw 2, update 1, draw 3, update 2
    replay = copy.deepcopy(fresh)
    rounds = [replay.next_batch(4), replay.next_batch(4)]
    replay.update(calls[0]["results"], calls[0]["completions"])
    rounds.append(replay.next_batch(4))
    for call, ids in zip(calls, rounds):
        assert sorted(call["results"]) == sorted(ids)
        assert all(len(r) == 4 for r in call["results"].values())
        assert all(len(call["completions"][i]) == 4 for i in ids)
    assert drawn == [rounds[2]]
    # the rewards fed back are the ones TRL computed (its completion log holds the last round)
    logged = np.add(trainer._logs["rewards"]["accuracy_reward"], trainer._logs["rewards"]["parity_reward"])
    assert sorted(logged.tolist()) == sorted(r for rs in calls[-1]["results"].values() for r in rs)

    # the sampler's state moved exactly as those rewards say
    state, replayed = trainer.prompt_sampler, fresh
    for call in calls[:-1]:
        replayed.update(call["results"], call["completions"])
    before_last = copy.deepcopy(replayed)
    replayed.update(calls[-1]["results"], calls[-1]["completions"])
    last = calls[-1]["results"]
    if sampler == "vade":
        np.testing.assert_allclose(state.a, replayed.a)
        np.testing.assert_allclose(state.b, replayed.b)
        for pid, rewards in last.items():  # a <- l1 a + n_correct, b <- l1 b + n_wrong for the chosen ids
            i = state.ids.index(pid)
            n_correct = sum(r > CORRECT_THRESHOLD for r in rewards)
            assert state.a[i] == pytest.approx(state.l1 * before_last.a[i] + n_correct)
            assert state.b[i] == pytest.approx(state.l1 * before_last.b[i] + len(rewards) - n_correct)
    elif sampler == "vas":
        for pid, rewards in last.items():
            assert state.pass_rate[state.ids.index(pid)] == pytest.approx(
                np.mean(np.asarray(rewards) > CORRECT_THRESHOLD))
        np.testing.assert_allclose(state.diversity, replayed.diversity)
        assert (state.diversity > 0).sum() >= len(last)  # TDS from the actual completions
    else:
        assert state.state_dict()["cursor"] == 12  # three rounds of 4 drawn from the first permutation


def test_prior_counts_from_the_difficulty_columns(tiny_model_dir, synthetic_store, tmp_path):
    from training.data import rl_dataset

    ds = rl_dataset(synthetic_store)
    ids = list(ds["id"])
    scored = ds.map(lambda r, i: {"n_rollouts": 8 if i < 5 else None, "n_correct": i if i < 5 else None},
                    with_indices=True)
    assert prior_counts(scored) == {ids[i]: (i, 8) for i in range(5)}
    trainer = build_trainer(_config(tmp_path, sampler="vade"), ModelConfig(path=str(tiny_model_dir)),
                            synthetic_store.root, train_dataset=scored, reward_funcs=[parity_reward])
    a = trainer.prompt_sampler.a
    assert [a[trainer.prompt_sampler.ids.index(ids[i])] for i in range(5)] == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------------------- resume after kill -9


@pytest.mark.slow
def test_resume_after_kill_restores_sampler_and_continues_metrics(tiny_model_dir, synthetic_store, tmp_path,
                                                                  monkeypatch):
    out = tmp_path / "run"
    values = _values(out, sampler="vade", max_steps=10, save_strategy="steps", save_steps=1, max_completion_length=16)
    model = ModelConfig(path=str(tiny_model_dir))
    code = ("import json, sys; from curation.loader import build; from training.grpo import run; "
            "from training.grpo.settings import GRPOStageConfig; from training.run_config import ModelConfig; "
            "a = json.loads(sys.argv[1]); "
            "run(build(GRPOStageConfig, a['grpo'], 'grpo'), ModelConfig(path=a['model']), a['data'])")
    args = {"grpo": values, "model": model.path, "data": str(synthetic_store.root)}
    proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(args)], cwd=Path.cwd(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 240
        while not (out / "checkpoint-2" / SAMPLER_STATE).is_file():
            assert proc.poll() is None, "the GRPO run ended before its second checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 4 minutes"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    ckpt = latest_checkpoint(out)
    step = int(ckpt.name.split("-")[1])
    assert 2 <= step < 10
    saved = json.loads((ckpt / SAMPLER_STATE).read_text())
    assert saved["global_step"] == step and saved["rounds_generated"] == step and len(saved["pending"]) == 1

    seen = {}
    real_build = grpo_train.build_trainer

    def capture(*args, **kw):
        trainer = real_build(*args, **kw)
        seen["resume_from"], seen["state"] = kw.get("resume_from"), copy.deepcopy(trainer.prompt_sampler.state_dict())
        seen["updates"] = _spy_updates(trainer)
        return trainer

    monkeypatch.setattr(grpo_train, "build_trainer", capture)
    result = grpo_train.run(build(GRPOStageConfig, values, "grpo"), model, synthetic_store.root)
    assert seen["resume_from"] == ckpt and result["resumed_from"] == str(ckpt)
    assert seen["state"] == saved["sampler"]  # the sampler starts exactly where the checkpoint left it
    assert sorted(seen["updates"][0]["results"]) == sorted(saved["pending"][0])  # the round drawn before the kill
    assert len(seen["updates"]) == 10 - step and result["steps"] == 10
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "reward" in r] == list(range(1, 11))  # continued, no step twice
    assert (out / "curves.png").stat().st_size > 1000
