"""`sightline experiment` end to end on a tiny store: 2 seeds x 3 arms (+ an unknown sampler), a few steps."""
import json
import math

import pytest

from pipelines.cli import main as sightline
from pipelines.experiment_report import mean_se
from tests.training.conftest import _datasets_cache, _one_torch_thread, synthetic_tables  # noqa: F401  (fixtures)

ARMS = ["sft", "grpo_vade", "sft_continued", "grpo_nosuch"]


def _store_with_val(root):
    from curation.store.versions import Store

    tables = synthetic_tables(40, 20, seed=3)
    tables["val"], tables["test"] = tables["test"][:8], tables["test"][8:]
    store = Store(root)
    store.write_version(tables, config={"source": "tests/pipelines/test_experiment.py"})
    return store


def _recipes(tmp_path, store):
    train = tmp_path / "train.yaml"
    train.write_text(f"""
run: {{name: t, data: {store.root}, threads: 1, stages: [sft, difficulty, grpo, eval]}}
model: {{path: {tmp_path / 'tiny'}}}
tiny_model: {{vocab_size: 400, text_hidden: 64, text_layers: 1, vision_depth: 1, vision_hidden: 32}}
sft: {{max_steps: 4, per_device_train_batch_size: 4, logging_steps: 1, warmup_steps: 0, max_minutes: 2}}
grpo: {{limit: 8, max_steps: 2, per_device_train_batch_size: 4, num_generations: 2, max_completion_length: 8,
        max_minutes: 2}}
difficulty: {{k: 2, limit: 8, max_new_tokens: 8, batch_size: 8}}
eval: {{batch_size: 8, max_new_tokens: 8}}
""")
    exp = tmp_path / "experiment.yaml"
    exp.write_text(f"""
name: t
train_config: {train}
overrides: ["sft.learning_rate=1e-3"]
seeds: [0, 1]
arms: {json.dumps(ARMS)}
grpo_checkpoints: 1
val_limit: 4
test_limit: 6
out_dir: {tmp_path / 'exp'}
""")
    return exp


def test_mean_and_standard_error():
    m, se = mean_se([0.2, 0.4, None, 0.6])
    assert m == pytest.approx(0.4) and se == pytest.approx(0.2 / math.sqrt(3))
    assert mean_se([0.5]) == (0.5, None) and mean_se([None]) == (None, None)


def _record(arm, seed, acc, blank, chart, rollouts=0, minutes=0.0):
    return {"arm": arm, "seed": seed, "rollouts": rollouts, "minutes": minutes, "curve": [],
            "test": {"n": 10, "accuracy": acc, "format_ok": 1.0, "rollouts": 30,
                     "per_task": {"chart": {"accuracy": chart}},
                     "probes": {"blank": {"accuracy": blank, "per_task": {"chart": {"accuracy": blank}}}}}}


def test_report_pairs_seeds_against_sft_and_tabulates_probes_per_family(tmp_path):
    from pipelines import experiment_report as report

    sft = [_record("sft", 0, 0.30, 0.10, 0.2), _record("sft", 1, 0.40, 0.20, 0.4)]
    grpo = [_record("grpo_vade", 0, 0.36, 0.10, 0.3, 64, 2.0),
            _record("grpo_vade", 1, 0.44, 0.30, 0.5, 64, 3.0)]
    delta = report.paired_delta(grpo, sft)  # +6 and +4 points
    assert delta["n"] == 2 and delta["mean"] == pytest.approx(0.05) and delta["se"] == pytest.approx(0.01)
    arms = {"sft": {"status": "done", **report.summarize_arm(sft)},
            "grpo_vade": {"status": "done", **report.summarize_arm(grpo), "vs_sft": delta},
            "grpo_mixed": {"status": "skipped", "reason": "sampler 'mixed' unknown"}}
    results = {"name": "x", "data": "d", "version": 1, "seeds": [0, 1], "test_rows": 10, "arms": arms,
               "majority": {"accuracy": 0.25, "per_task": {"chart": {"accuracy": 0.1}}}}
    md = report.markdown(results)
    assert "| sft | 2 | 35.0 ± 5.0 | - | 15.0 ± 5.0 | 30.0 ± 10.0 | 0 ± 0 | 0.00 ± 0.00 |" in md
    row = "| grpo_vade | 2 | 40.0 ± 4.0 | 5.0 ± 1.0 | 20.0 ± 10.0 | 40.0 ± 10.0 | 64 ± 0 | 2.50 ± 0.50 |"
    assert row in md
    assert "| majority answer | - | 25.0 | - | - | 10.0 | 0 | 0 |" in md
    assert "| grpo_vade | 40 / 20 | 40 / 20 |" in md and "- `grpo_mixed`: sampler 'mixed' unknown" in md
    assert report.plot(results, tmp_path / "c.png").stat().st_size > 5000


def test_experiment_runs_every_arm_and_seed_writes_results_and_skips_finished_arms(tmp_path, capsys):
    store = _store_with_val(tmp_path / "data" / "synth")
    exp = _recipes(tmp_path, store)
    assert sightline(["experiment", "--config", str(exp)]) == 0
    out = tmp_path / "exp"
    results = json.loads((out / "results.json").read_text())
    assert list(results["arms"]) == ARMS and results["seeds"] == [0, 1] and results["version"] == 1
    assert results["arms"]["grpo_nosuch"]["status"] == "skipped"
    assert "unknown to training.sampling.make_sampler" in results["arms"]["grpo_nosuch"]["reason"]
    for arm in ARMS[:3]:
        summary = results["arms"][arm]
        assert summary["status"] == "done" and summary["seeds"] == [0, 1] and summary["n"] == [6, 6]
        for key in ("overall", "probe/blank", "probe/swapped", "minutes", "rollouts"):
            assert math.isfinite(summary["mean"][key]), (arm, key)
        assert math.isfinite(summary["se"]["overall"])
    grpo = results["records"]["grpo_vade"]
    # the difficulty pass (8 prompts x k=2, one new version per seed's SFT policy) is charged to vade,
    # then 2 GRPO steps x 4 completions per round, counted from the sampler state
    scored = [json.loads((out / f"seed{k}" / "difficulty.json").read_text()) for k in (0, 1)]
    assert [d["version"] for d in scored] == [2, 3]
    assert [r["rollouts"] for r in grpo] == [16 + 8, 16 + 8] and all(r["difficulty_charged"] for r in grpo)
    # the val curve: SFT (after the difficulty pass), the checkpoint at step 1, the final model
    curve = [[p["step"], p["rollouts"], p["val_n"]] for p in grpo[0]["curve"]]
    assert curve == [[0, 16, 4], [1, 20, 4], [2, 24, 4]]
    assert grpo[0]["curve"][0]["val_accuracy"] == results["records"]["sft"][0]["curve"][0]["val_accuracy"]
    cont = results["records"]["sft_continued"]
    assert all(r["budget_minutes"] == pytest.approx(g["minutes"]) for r, g in zip(cont, grpo))
    assert all(r["test"]["rollouts"] == 18 for r in cont)  # 6 test rows x (own, blank, swapped image)
    md = (out / "results.md").read_text()
    for arm in ARMS[:3]:
        assert f"| {arm} | 2 |" in md
    assert "blank img" in md and "majority answer" in md and "`grpo_nosuch`" in md
    assert (out / "curves.png").stat().st_size > 5000

    before = {p: p.stat().st_mtime_ns for p in out.glob("seed*/arms/*.json")}
    assert len(before) == 6
    capsys.readouterr()
    assert sightline(["experiment", "--config", str(exp)]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("seed*/arms/*.json")} == before
    printed = capsys.readouterr().out
    seed_lines = [line for line in printed.splitlines() if line.startswith("[experiment] seed")]
    assert len(seed_lines) == 6 and all(line.endswith("done before, not re-run") for line in seed_lines)
    assert not any(line.startswith(("sft:", "grpo:")) for line in printed.splitlines())  # training's lines


def test_experiment_recipe_mistakes_are_one_line(tmp_path, capsys):
    store = _store_with_val(tmp_path / "data" / "synth")
    exp = _recipes(tmp_path, store)
    assert sightline(["experiment", "--config", str(exp), "--set", "arms=[sft, dpo]"]) == 1
    assert "arms must be distinct names" in capsys.readouterr().err
    assert sightline(["experiment", "--config", str(exp), "--set", "overrides=[grpo.max_minutes=null]"]) == 1
    assert "every arm keeps a wall-clock guard: set grpo.max_minutes" in capsys.readouterr().err
    assert not (tmp_path / "exp" / "seed0").exists()
    capsys.readouterr()
    assert sightline(["experiment", "--config", str(exp), "--check"]) == 0
    plan = capsys.readouterr().out
    assert "grpo_vade: GRPO from SFT, 2 steps x 4 completions, checkpoint every 1 steps" in plan
    assert "grpo_nosuch: skipped (sampler 'nosuch' unknown" in plan
    assert not (tmp_path / "exp" / "seed0").exists()
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "experiment.json").write_text(json.dumps({"data": "data/other", "version": 4}))
    assert sightline(["experiment", "--config", str(exp)]) == 1
    assert "holds arms trained on data/other v4" in capsys.readouterr().err


def test_round2_arm_continues_the_loop_from_a_grpo_arm(tmp_path):
    """One seed, spatial yes/no rows (a short SFT gets half right, so the policy passes find verified answers):
    round2 starts from grpo_uniform's policy, trains on its verified answers, and is charged its whole cost."""
    from curation.store.versions import Store

    tables = synthetic_tables(40, 8, seed=4, families=["spatial"], level=(1, 2), n_val=6)
    store = Store(tmp_path / "data" / "spatial")
    store.write_version(tables, config={"source": "tests/pipelines/test_experiment.py"})
    train = tmp_path / "train.yaml"
    train.write_text(f"""
run: {{name: t, data: {store.root}, threads: 1}}
model: {{path: {tmp_path / 'tiny'}}}
tiny_model: {{vocab_size: 400, text_hidden: 64, text_layers: 1, vision_depth: 1, vision_hidden: 32}}
sft: {{max_steps: 80, per_device_train_batch_size: 8, learning_rate: 3.0e-3, warmup_steps: 0, levels: [1],
      max_minutes: 3}}
grpo: {{limit: 8, max_steps: 2, per_device_train_batch_size: 4, num_generations: 2, max_completion_length: 64,
        max_minutes: 2}}
difficulty: {{k: 2, limit: 8, temperature: 0.3, batch_size: 8}}
eval: {{batch_size: 8, max_new_tokens: 64}}
""")
    exp = tmp_path / "experiment.yaml"
    exp.write_text(f"""
name: r2
train_config: {train}
seeds: [0]
arms: [sft, grpo_uniform, round2]
round2_from: uniform
round2_overrides: [sft.levels=null, sft.max_steps=4, sft.learning_rate=1e-4]
next_prompts: {{limit: 16, k: 4}}
grpo_checkpoints: 0
val_limit: 4
test_limit: 8
out_dir: {tmp_path / 'exp'}
""")
    assert sightline(["experiment", "--config", str(exp)]) == 0
    out = tmp_path / "exp"
    rec = json.loads((out / "seed0" / "arms" / "round2.json").read_text())
    grpo = json.loads((out / "seed0" / "arms" / "grpo_uniform.json").read_text())
    state1 = json.loads((out / "seed0" / "loop" / "round1" / "state.json").read_text())
    state2 = json.loads((out / "seed0" / "loop" / "round2" / "state.json").read_text())
    # round 1 is the seed's shared run: its GRPO policy wrote round 2's traces, nothing of round 1 re-ran
    assert state1["grpo"]["model"] == grpo["train"]["model"] and set(state1["minutes"]) == {"distill"}
    assert rec["versions"]["distill"] == state1["distill"] and state2["version"] == state1["distill"]
    assert state2["sft"]["base_model"] == grpo["train"]["model"] and state2["sft"]["teachers"] == [rec["traces"]]
    assert rec["test"] == state2["eval"]["grpo"] and rec["test"]["n"] == 8
    # charged: the GRPO arm's rollouts + the distill pass (16 prompts x 4) + round 2's difficulty (8 x 2) + its GRPO
    passes = [store.manifest(v)["stage_counts"]["difficulty"]["rollouts"] for v in (state1["distill"], state2["difficulty"])]
    assert passes == [64, 16]
    assert rec["rollouts"] == grpo["rollouts"] + 64 + 16 + 2 * 4
    results = json.loads((out / "results.json").read_text())
    assert results["arms"]["round2"]["vs_grpo_uniform"]["n"] == 1
    assert "- `round2` vs `grpo_uniform`:" in (out / "results.md").read_text()
