import json

from curation.models import generate_texts
from training.evaluate import evaluate, label, main, score, table


def _rows(solutions, tasks, kinds=None, choices=None):
    n = len(solutions)
    return [{"id": f"r{i}", "task": tasks[i], "solution": solutions[i],
             "answer_type": (kinds or [None] * n)[i], "choices": (choices or [None] * n)[i]} for i in range(n)]


def test_score_counts_by_hand():
    responses = ["<think>2+1</think><answer>3</answer>",      # counting: right
                 "<think>..</think><answer>5</answer>",        # counting: wrong
                 "<answer>B</answer>",                         # chart: right, bad format
                 "<think>left</think><answer>no</answer>"]     # spatial: right
    rows = _rows(["3", "4", "B", "no"], ["counting", "counting", "chart", "spatial"],
                 ["integer", "integer", "multiple_choice", "yes_no"], [None, None, ["a", "b"], None])
    s = score(responses, rows)
    assert (s["n"], s["correct"], s["accuracy"], s["format_ok"]) == (4, 3, 0.75, 0.75)
    assert s["per_task"] == {"chart": {"n": 1, "correct": 1, "accuracy": 1.0},
                             "counting": {"n": 2, "correct": 1, "accuracy": 0.5},
                             "spatial": {"n": 1, "correct": 1, "accuracy": 1.0}}
    assert [v["correct"] for v in s["verdicts"]] == [True, False, True, True]


def test_evaluate_equals_verify_on_the_models_own_greedy_outputs(tiny_model_dir, synthetic_store):
    from curation.verify import verify
    from training.data import rl_dataset
    from curation.models import load_model_and_processor

    model, processor = load_model_and_processor(tiny_model_dir)
    test = rl_dataset(synthetic_store, table="test", limit=8)
    texts = generate_texts(model, processor, test["prompt"], test["images"], max_new_tokens=12, batch_size=3,
                           progress=False)
    rows = test.to_list()
    expected = sum(verify(t, r["solution"], choices=r["choices"], answer_type=r["answer_type"]).correct
                   for t, r in zip(texts, rows))
    result = evaluate(tiny_model_dir, synthetic_store, "latest", 8, 4, max_new_tokens=12, device="cpu",
                      progress=False)
    assert result["n"] == 8 and result["correct"] == expected and result["accuracy"] == expected / 8
    assert result["samples"] == result["samples"][:8]
    assert [s["response"] for s in result["samples"]] == texts  # batch size does not change greedy outputs


def test_evaluate_scores_known_answers_overall_and_per_task(tiny_model_dir, synthetic_store, monkeypatch):
    """Script the 'model': gold answers for every third row, a wrong one elsewhere; count by hand."""
    import training.evaluate as ev

    rows = synthetic_store.read_table("test").to_pylist()
    wrong = {"multiple_choice": "Z", "yes_no": "maybe"}

    seen = []

    def scripted(model, processor, prompts, images, **kw):  # evaluate walks the table in order, in chunks
        out = []
        for p in prompts:
            i = len(seen)
            assert p == rows[i]["prompt"]
            seen.append(i)
            answer = rows[i]["solution"] if i % 3 == 0 else wrong.get(rows[i]["answer_type"], "-1")
            out.append(f"<think>row {i}</think><answer>{answer}</answer>")
        return out

    monkeypatch.setattr("curation.models.generate_texts", scripted)
    result = ev.evaluate(tiny_model_dir, synthetic_store, "latest", None, 6, device="cpu", progress=False)
    right = [i for i in range(len(rows)) if i % 3 == 0]
    assert (result["n"], result["correct"], result["format_ok"]) == (20, len(right), 1.0)
    for task, t in result["per_task"].items():
        idx = [i for i, r in enumerate(rows) if r["task"] == task]
        assert (t["n"], t["correct"]) == (len(idx), len([i for i in idx if i in right]))


def test_eval_command_writes_json_and_chart_for_several_checkpoints(tiny_model_dir, synthetic_store, tmp_path, capsys):
    out = tmp_path / "eval.json"
    rc = main(["--model", str(tiny_model_dir), "--model", str(tiny_model_dir), "--data", str(synthetic_store.root),
               "--limit", "5", "--batch-size", "5", "--max-new-tokens", "4", "--device", "cpu", "--out", str(out),
               "--threads", "1"])
    assert rc == 0
    saved = json.loads(out.read_text())
    assert [r["n"] for r in saved["results"]] == [5, 5] and saved["version"] == 1
    assert out.with_suffix(".png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "overall" in printed and "tiny" in printed and "majority" in printed


def test_labels_and_table():
    assert label("runs/mini/sft/final") == "sft" and label("models/tiny") == "tiny"
    r = {"model": "m", "n": 2, "accuracy": 0.5, "format_ok": 1.0,
         "per_task": {"chart": {"n": 2, "correct": 1, "accuracy": 0.5}}}
    lines = table([r], labels=["base"]).splitlines()
    assert lines[0].split() == ["model", "n", "overall", "format", "chart"]
    assert lines[2].split() == ["base", "2", "50.0%", "100.0%", "50.0%"]


def test_majority_baseline_counts_the_most_common_train_answer_per_task(synthetic_store):
    from collections import Counter

    from training.evaluate import majority_baseline

    train = synthetic_store.read_table("rl").to_pylist()
    test = synthetic_store.read_table("test").to_pylist()
    guess = {t: Counter(r["solution"] for r in train if r["task"] == t).most_common(1)[0][0]
             for t in {r["task"] for r in train}}
    expected = sum(r["solution"] == guess[r["task"]] for r in test)
    b = majority_baseline(synthetic_store)
    assert b["answers"] == dict(sorted(guess.items()))
    assert (b["n"], b["correct"]) == (len(test), expected)
