from types import SimpleNamespace

import pytest

from curation.errors import SightlineError
from training.rewards import (
    accuracy_reward,
    completion_text,
    format_reward,
    make_length_penalty,
    overlong_penalty,
    reward_functions,
    stage_limit,
)

GOOD = "<think>There are 2 red and 1 blue circle. 2 + 1 = 3.</think><answer>3</answer>"


def test_completion_text_reads_strings_messages_and_parts():
    assert completion_text(GOOD) == GOOD
    assert completion_text([{"role": "assistant", "content": GOOD}]) == GOOD
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "<think>a</think>"},
                                                              {"type": "text", "text": "<answer>b</answer>"}]}]) \
        == "<think>a</think><answer>b</answer>"
    assert completion_text(None) == "" and completion_text([]) == ""


def test_accuracy_reward_uses_the_verifier_on_plain_and_conversational_completions():
    completions = [
        GOOD,                                                            # right
        [{"role": "assistant", "content": "<think>x</think><answer>three</answer>"}],  # a count in words
        "<think>I think 3</think><answer>4</answer>",                    # the number in <think> does not count
        "<think>tallest is cat</think><answer>B</answer>",               # letter of the right option
        "<think>tallest is cat</think><answer>cat</answer>",             # option text
        "<think>...</think><answer>A</answer>",                          # wrong option
        "<think>it is above</think><answer>Yes</answer>",
        "no tags at all, just 3",                                        # last line still read as the answer
        "",
    ]
    solution = ["3", "3", "3", "B", "B", "B", "yes", "3", "3"]
    choices = [None, None, None, ["dog", "cat"], ["dog", "cat"], ["dog", "cat"], None, None, None]
    answer_type = ["integer", "integer", "integer", "multiple_choice", "multiple_choice", "multiple_choice",
                   "yes_no", "integer", "integer"]
    got = accuracy_reward(completions, solution=solution, choices=choices, answer_type=answer_type, task=["x"] * 9)
    assert got == [1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0]


def test_accuracy_reward_matches_verify_exactly():
    from curation.answers.verify import verify

    texts = [GOOD, "<answer>\\sqrt{73}</answer>", "<answer>90°</answer>", "<answer>2</answer>"]
    gold = ["3", "\\sqrt{73}", "90", "3"]
    kinds = ["integer", "math", "number", "integer"]
    assert accuracy_reward(texts, solution=gold, answer_type=kinds) == [
        float(verify(t, g, answer_type=k).correct) for t, g, k in zip(texts, gold, kinds)]


def test_format_reward():
    got = format_reward([GOOD, " " + GOOD + "\n", "<answer>3</answer>", "<think>a</think>", "<think></think><answer></answer>",
                         [{"role": "assistant", "content": GOOD}], GOOD + "<answer>4</answer>"])
    assert got == [1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def test_length_penalty_follows_the_stage_schedule():
    assert stage_limit([[0, 4], [10, 8], [20, 16]], 0) == 4
    assert stage_limit([[0, 4], [10, 8], [20, 16]], 10) == 8
    assert stage_limit([[0, 4], [10, 8], [20, 16]], 99) == 16
    penalty = make_length_penalty([[0, 4], [10, 8]])
    assert penalty.__name__ == "length_penalty"  # TRL logs rewards/<name>/mean
    ids = [[1] * 3, [1] * 4, [1] * 5, [1] * 9]
    assert penalty(["a"] * 4, completion_ids=ids, trainer_state=SimpleNamespace(global_step=0)) == [0.0, 0.0, -1.0, -1.0]
    assert penalty(["a"] * 4, completion_ids=ids, trainer_state=SimpleNamespace(global_step=10)) == [0.0, 0.0, 0.0, -1.0]
    # without token ids the text length (characters) counts; a fixed int limit is one stage
    assert make_length_penalty(5)(["abcde", "abcdef"]) == [0.0, -1.0]


def test_soft_overlong_penalty_ramps_linearly():
    assert overlong_penalty(6, limit=10, soft=4) == 0.0
    assert overlong_penalty(8, limit=10, soft=4) == pytest.approx(-0.5)
    assert overlong_penalty(10, limit=10, soft=4) == pytest.approx(-1.0)
    assert overlong_penalty(11, limit=10, soft=4, penalty=0.5) == -0.5


def test_reward_functions_by_name():
    fns = reward_functions(["accuracy", "format", "length"], length_stages=64)
    assert [f.__name__ for f in fns] == ["accuracy_reward", "format_reward", "length_penalty"]
    with pytest.raises(SightlineError, match="unknown reward"):
        reward_functions(["style"])
