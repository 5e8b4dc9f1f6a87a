"""The judge reward for open rows (training.rewards.make_judge_reward), with the program judge."""
import pytest

from curation.generation.judge import JudgeSpec
from training.rewards import judge_record, judge_stats, make_judge_reward, prompt_question


def test_open_rows_are_judged_cached_and_closed_rows_use_the_rule():
    reward = make_judge_reward(JudgeSpec(backend="program"))
    gold = "A small dog is sleeping on the sofa."
    completions = ["<answer>a small dog</answer>", "<answer>a cat</answer>", "<answer>3</answer>", "<answer>4</answer>"]
    columns = {"solution": [gold, gold, "3", "3"], "answer_type": ["open", "open", "integer", "integer"],
               "id": ["p1", "p1", "p2", "p2"], "prompt": ["What is on the sofa?"] * 2 + ["How many?"] * 2}
    assert reward(completions, **columns) == [1.0, 0.0, 1.0, 0.0]
    assert reward.stats["calls"] == 2 and reward.stats["hits"] == 0
    assert reward(completions, **columns) == [1.0, 0.0, 1.0, 0.0]   # the same completions again: cached
    assert reward.stats["calls"] == 2 and reward.stats["hits"] == 2
    assert "cache hit rate 50%" in judge_stats(reward)


def test_trl_call_shape_question_from_the_user_turn_and_repeats_in_a_group_are_hits():
    """TRL passes ``prompts`` (conversational) and ``log_metric``; a group's repeated completion is judged once."""
    from curation.generation.prompts import user_message

    reward = make_judge_reward(JudgeSpec(backend="program"))
    prompt = [user_message("Which shape is largest?", ["circle", "square"])]
    gold = "The largest one is the square."
    logged = []
    completions = [[{"role": "assistant", "content": "<answer>B</answer>"}]] * 3 + \
                  [[{"role": "assistant", "content": "<answer>A</answer>"}]]
    out = reward(completions, solution=[gold] * 4, answer_type=["open"] * 4, choices=[["circle", "square"]] * 4,
                 prompts=[prompt] * 4, id=["q"] * 4, log_metric=lambda k, v: logged.append((k, v)))
    assert out == [1.0, 1.0, 1.0, 0.0]  # the option letter read against the sentence: the choices reach the judge
    assert reward.stats["calls"] == 2 and reward.stats["hits"] == 2
    assert logged == [("judge/calls", 2.0), ("judge/cache_hit_rate", 0.5)]
    assert prompt_question(prompt).startswith("Which shape is largest?")


def test_reward_functions_swap_accuracy_for_the_judge_only_with_one():
    from training.rewards import accuracy_reward, reward_functions

    assert reward_functions(["accuracy", "format"], judge=JudgeSpec())[0] is accuracy_reward  # backend none
    judged = reward_functions(["accuracy", "format"], judge=JudgeSpec(backend="program"))
    assert judged[0].__name__ == "judge_accuracy" and judged[1].__name__ == "format_reward"
    assert judge_record(judged[0]) == {"judge": "program@judge-v1", "calls": 0, "cache_hits": 0, "calls_per_s": None,
                                       "cache_hit_rate": None, "seconds": 0.0, "judge_errors": 0, "last_error": None}


def test_train_recipe_judge_section(tmp_path):
    from curation.errors import SightlineError
    from training.recipe import load_train_recipe

    assert load_train_recipe(None).judge.backend == "none"
    recipe = load_train_recipe(None, ["judge.backend=program"])
    assert recipe.judge.enabled and recipe.judge.judge_id == "program@judge-v1"
    with pytest.raises(SightlineError, match="judge: backend 'transformers' needs `model:`"):
        load_train_recipe(None, ["judge.backend=transformers"])
    with pytest.raises(SightlineError, match="did you mean 'judge.backend'"):
        load_train_recipe(None, ["judge.backnd=program"])


def test_a_model_judge_through_the_reward_batches_and_never_scores_an_error(tiny_model_dir):
    """A transformers judge (the tiny model: random weights, so its replies are not the one word) behind the
    reward: every open completion asked once per step, its unparseable verdict scored 0, repeats cached."""
    spec = JudgeSpec(backend="transformers", model=str(tiny_model_dir), batch_size=3, max_new_tokens=4, device="cpu")
    reward = make_judge_reward(spec)
    completions = [f"<answer>{w}</answer>" for w in ("a red square", "red", "a circle", "a red square")]
    columns = {"solution": ["A red square."] * 4, "answer_type": ["open"] * 4, "id": ["p"] * 4,
               "prompts": [[{"role": "user", "content": [{"type": "text", "text": "What is shown?"}]}]] * 4}
    assert reward(completions, **columns) == [0.0] * 4  # judge_error is never a reward
    assert reward.stats["calls"] == 3 and reward.stats["hits"] == 1 and reward.stats["seconds"] > 0
    assert reward.stats["errors"] == 3 and reward.stats["last_error"] is None  # replies, not failures
    assert judge_stats(reward).endswith(", 3 judge errors")
    assert reward(completions, **columns) == [0.0] * 4 and reward.stats["calls"] == 3  # all cached
    assert judge_record(reward)["judge"] == f"transformers:{tiny_model_dir}@judge-v1"


def test_a_missing_judge_model_fails_when_the_reward_is_made(tmp_path):
    from curation.errors import SightlineError

    with pytest.raises(SightlineError, match="judge: model path .* does not exist"):
        make_judge_reward(JudgeSpec(backend="vllm", model=str(tmp_path / "Qwen2.5-7B-Instruct")))
