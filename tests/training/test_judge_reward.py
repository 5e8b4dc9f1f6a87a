"""The judge reward for open rows (training.rewards.make_judge_reward), with the program judge."""
from curation.generation.judge import JudgeSpec
from training.rewards import judge_stats, make_judge_reward


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
