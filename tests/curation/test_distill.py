from curation.generation.distill import SelectConfig, rewrite_trace, select_traces


def test_rewrite_turns_caption_talk_into_image_talk():
    text, edits = rewrite_trace("<think>The caption says there are 3 red circles. According to the description, "
                                "one is large.</think><answer>3</answer>")
    assert "caption" not in text.lower() and "description" not in text.lower()
    assert "the image" in text and edits == 2
    same, zero = rewrite_trace("<think>The image shows 3 circles.</think><answer>3</answer>")
    assert zero == 0 and same == "<think>The image shows 3 circles.</think><answer>3</answer>"


def _t(i, correct=True, fmt=True, length=50, edits=0):
    return {"trace_id": f"t{i}", "correct": correct, "format_ok": fmt, "length_chars": length, "rewrite_edits": edits}


def test_select_shortest_correct_first_with_reasons():
    traces = [_t(0, length=80), _t(1, length=40), _t(2, correct=False, length=10), _t(3, fmt=False),
              _t(4, length=5), _t(5, length=9000), _t(6, edits=9, length=30)]
    select_traces(traces, SelectConfig(max_per_example=1, min_chars=20, max_chars=4000, max_rewrite_edits=3))
    status = {t["trace_id"]: t["status"] for t in traces}
    assert status == {"t0": "not_shortest", "t1": "selected", "t2": "incorrect", "t3": "bad_format",
                      "t4": "too_short", "t5": "too_long", "t6": "too_many_edits"}
    assert [t["trace_id"] for t in traces if t["selected"]] == ["t1"]
    traces = [_t(0, length=80), _t(1, length=40), _t(2, length=60)]
    select_traces(traces, SelectConfig(max_per_example=2))
    assert sorted(t["trace_id"] for t in traces if t["selected"]) == ["t1", "t2"]
