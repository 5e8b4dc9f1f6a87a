"""Answer verification: extraction and every answer kind, right and wrong (bad input, format and the time
bound are in test_verify_limits.py)."""
from __future__ import annotations

import pytest

from curation.answers.verify import (
    MULTI_CHOICE,
    OPEN,
    Verdict,
    answer_type_for_gold,
    extract_answer,
    verify,
)


def check(response, gold, choices=None, answer_type=None, question=None) -> Verdict:
    return verify(response, gold, choices=choices, answer_type=answer_type, question=question)


# ----------------------------------------------------------------------------- extraction

@pytest.mark.parametrize("response, expected", [
    ("<think>2+3</think><answer>5</answer>", "5"),
    ("<answer>3</answer> then <answer> 7 </answer>", "7"),              # last block wins
    ("<answer>\\boxed{12}</answer>", "12"),
    ("<answer>The answer is (B).</answer>", "(B)"),
    ("so \\boxed{\\frac{1}{2}} and finally \\boxed{\\frac{3}{4}}", "\\frac{3}{4}"),
    ("The result is \\fbox{42}.", "42"),
    ("We get $\\boxed{x^{2}+1}$.", "x^{2}+1"),                        # nested braces
    ("Counting gives 4.\nThe answer is 4 apples.", "4 apples"),
    ("Final answer: C", "C"),
    ("**Answer:** 17", "17"),
    ("Answer:\n\n9", "9"),
    ("Final Answer: The final answer is $3$. I hope it is correct.", "$3$"),
    ("The answer is 5. This is because 2 + 3 = 5.", "5"),
    ("I counted the dots.\nThere are 6 dots", "There are 6 dots"),      # last non-empty line
    ("reasoning in a template-opened think</think>\nThe answer is B.", "B"),
    ("<think>first</think> 8 <think>second</think>", "8"),
    ("5<|im_end|>", "5"),
])
def test_extract_answer(response, expected):
    assert extract_answer(response) == expected


@pytest.mark.parametrize("response", [
    None, "", "   ", 42,
    "<think>the answer is 5 \\boxed{5}</think>",          # only inside thinking
    "<think>the answer is 5",                             # unclosed think hides the rest
    "<think>x</think><answer></answer>",                  # empty answer block
    "<think>x</think><answer>  \n </answer>",
])
def test_extract_answer_none(response):
    assert extract_answer(response) is None


def test_answer_only_in_think_is_no_answer():
    assert check("<think>It is clearly 5.</think>", "5") == Verdict(False, None, "no_answer")
    assert check("<think>answer: B</think><answer></answer>", "B").reason == "no_answer"


# ----------------------------------------------------------------------------- multiple choice

@pytest.mark.parametrize("response", [
    "B", "(B)", "B.", "B)", "[B]", "b", "Option B", "option (B)", "The answer is B",
    "The correct choice is B.",
    "B: 12 cm", "B. 12 cm", "(B) 12 cm", "b) 12 cm", "**B**", "\\boxed{B}", "\\boxed{\\text{B}}",
    "\\text{(B)}", "<answer>I think it's B</answer>", "The answer is: B", "I pick (B) here",
    "<think>A looks close but</think><answer>B</answer>", "Counting the sides first.\nB",
])
def test_choice_letter_right(response):
    v = check(response, "B", choices=["10 cm", "12 cm", "14 cm", "16 cm"])
    assert (v.correct, v.reason) == (True, "match_choice")


@pytest.mark.parametrize("response", ["C", "(A)", "Option D", "The answer is C", "A: 10 cm", "d"])
def test_choice_letter_wrong(response):
    v = check(response, "B", choices=["10 cm", "12 cm", "14 cm", "16 cm"])
    assert (v.correct, v.reason) == (False, "mismatch")


def test_choice_without_options_and_gold_forms():
    assert check("The answer is (C).", "C").reason == "match_choice"
    assert check("(C)", "(C)").correct and check("C", "C.").correct
    assert not check("D", "(C)").correct
    assert check("Both A and C could work", "C").reason == "no_choice"   # a hedge picks nothing
    assert check("C", "\\text{C}").correct and not check("B", "$\\text{C}$").correct


@pytest.mark.parametrize("response, correct", [
    ("5 cm", True), ("5cm", True), ("five cm", True), ("The answer is 5 cm", True), ("5", True),
    ("3 cm", False), ("3", False),
])
def test_choice_by_option_text(response, correct):
    v = check(response, "B", choices=["3 cm", "5 cm"])
    assert v.correct is correct
    assert v.reason == ("match_choice" if correct else "mismatch")


def test_choice_gold_given_as_option_text():
    choices = ["red", "green", "blue"]
    assert check("B", "green", choices=choices).reason == "match_choice"
    assert check("green", "green", choices=choices).correct
    assert not check("C", "green", choices=choices).correct
    assert check("C", "Blue", choices=choices, answer_type="multiple_choice").correct


def test_choice_labels_in_options_and_letter_beats_text():
    choices = ["A. 3 cm", "B. 5 cm"]
    assert check("5 cm", "B", choices=choices).correct
    assert not check("3 cm", "B", choices=choices).correct
    # a letter with the wrong option's text is read by its letter
    assert check("B: 3 cm", "B", choices=["3 cm", "5 cm"]).correct


def test_choice_article_is_not_a_letter():
    assert check("a triangle", "A", choices=["triangle", "square"]).correct   # text match
    assert check("a square", "A", choices=["triangle", "square"]).reason == "mismatch"


# ----------------------------------------------------------------------------- yes / no

@pytest.mark.parametrize("response, gold, correct", [
    ("Yes", "yes", True), ("yes.", "Yes", True), ("YES", "yes", True), ("Yes, it is.", "yes", True),
    ("Yes, there is a cat on the mat.", "yes", True), ("true", "yes", True),
    ("The statement is False.", "no", True),
    ("No, it isn't.", "no", True), ("\\text{No}", "no", True), ("<answer>no</answer>", "False", True),
    ("no", "yes", False), ("No.", "Yes", False), ("It is not true.", "yes", False),
    ("yes or no", "yes", False),
    ("maybe", "no", False), ("Yes", "no", False),
])
def test_yes_no(response, gold, correct):
    v = check(response, gold)
    assert v.correct is correct
    assert v.reason == ("match_yes_no" if correct else "mismatch")


def test_yes_no_gold_sentence_needs_the_hint():
    assert check("Yes", "Yes, the cat is on the mat.", answer_type="yes_no").correct
    assert not check("No", "Yes, the cat is on the mat.", answer_type="yes_no").correct
    assert not check("Yes", "Yes, the cat is on the mat.").correct   # without it: text, compared whole


# ----------------------------------------------------------------------------- numbers

@pytest.mark.parametrize("response, gold", [
    ("3", "3"), ("three", "3"), ("3", "three"), ("twenty-one", "21"), ("one hundred and five", "105"),
    ("There are three apples.", "3"), ("There are 5 apples in the image", "5"), ("It is 7", "seven"),
    ("no tags at all, just 3", "3"),
    ("5 cm", "5"), ("5cm", "5"), ("5 meters", "5"), ("5", "5 cm"), ("12 cm^2", "12"), ("12 cm²", "12"),
    ("5 \\text{ cm}", "5"), ("\\text{5 cm}", "5"), ("5\\mathrm{cm}", "5"), ("$5$", "5"),
    ("65°", "65"), ("65^\\circ", "65"), ("65^{\\circ}", "65"), ("65 degrees", "65"), ("65", "65°"),
    ("\\angle ABC = 65^\\circ", "65"), ("x = 5", "5"),
    ("1,234", "1234"), ("1234", "1,234"), ("1,234,567.5", "1234567.5"), ("2.5 million", "2500000"),
    ("−3", "-3"), ("-3", "−3"), ("−3.5", "-3.5"),
    ("\\frac{1}{2}", "0.5"), ("\\dfrac{1}{2}", "0.5"), ("\\tfrac12", "1/2"), ("0.5", "\\frac{1}{2}"),
    ("-\\frac{3}{4}", "-0.75"), ("\\frac{-3}{4}", "-3/4"), ("2.0", "2"), ("12.50", "12.5"),
    ("$12.50", "12.5"),
    ("\\sqrt{13}", "\\sqrt{13}"), ("√13", "\\sqrt{13}"), ("sqrt(13)", "\\sqrt{13}"), ("\\sqrt13", "√13"),
    ("2\\sqrt{3}", "\\sqrt{12}"), ("2√3", "\\sqrt{12}"), ("\\frac{\\sqrt{3}}{2}", "\\sqrt{3}/2"),
    ("1\\frac{1}{2}", "1.5"), ("2½", "2.5"), ("½", "0.5"), ("12 (twelve)", "12"),
    ("25%", "25"), ("25%", "0.25"), ("25 percent", "0.25"), ("0.25", "25%"), ("25", "25%"),
    ("50%", "\\frac{1}{2}"),
])
def test_number_right(response, gold):
    v = check(response, gold)
    assert (v.correct, v.reason) == (True, "match_number"), v


@pytest.mark.parametrize("response, gold", [
    ("4", "3"), ("four", "3"), ("6 cm", "5"), ("5.5 cm", "5"), ("15 cm", "5"), ("66°", "65"), ("−3", "3"),
    ("1,235", "1234"), ("\\frac{1}{3}", "0.5"), ("\\sqrt{12}", "\\sqrt{13}"), ("√12", "\\sqrt{13}"),
    ("3\\sqrt{2}", "2\\sqrt{3}"), ("0.866", "\\frac{\\sqrt{3}}{2}"), ("0.25", "25"), ("25%", "2.5"),
    ("4 cm", "40 mm"),                                   # units are dropped, not converted
])
def test_number_wrong(response, gold):
    v = check(response, gold)
    assert (v.correct, v.reason) == (False, "mismatch"), v


@pytest.mark.parametrize("response", [
    "3 or 4", "between 2 and 4", "3, 4", "3 and 4 apples", "not 3", "three or 4", "It isn't exactly 3",
    "I see 3 cats and 3 dogs",
])
def test_number_hedges_are_wrong(response):
    assert not check(response, "3", answer_type="integer").correct


# ----------------------------------------------------------------------------- math-verify

@pytest.mark.parametrize("response, gold, correct", [
    ("(x+1)^2", "x^2+2x+1", True),
    ("<answer>\\boxed{1+x^2}</answer>", "x^2+1", True),
    ("y = 2x + 3", "2x+3", True),
    ("\\frac{\\pi}{4}", "\\pi/4", True),
    ("x^2+1", "x^2-1", False),
    ("\\frac{\\pi}{3}", "\\pi/4", False),
])
def test_math_expressions(response, gold, correct):
    v = check(response, gold, answer_type="math")
    assert v.correct is correct
    assert v.reason in (("match_math", "match_text") if correct else ("mismatch",))


# ----------------------------------------------------------------------------- text

@pytest.mark.parametrize("response, gold, correct", [
    ("Red", "red", True), ("red.", "Red", True), ("  the   Eiffel Tower ", "Eiffel tower", True),
    ("\\text{circle}", "circle", True), ("ten", "10", True),
    ("blue", "red", False), ("dark red", "red", False), ("The color is red or blue", "red", False),
])
def test_text(response, gold, correct):
    v = check(response, gold, answer_type="text")
    assert v.correct is correct
    assert v.reason in (("match_text", "match_number") if correct else ("mismatch",))


# ----------------------------------------------------------------------------- answers in a sentence

@pytest.mark.parametrize("response, gold", [
    ("It is a triangle.", "triangle"), ("The shape is red.", "red"), ("The answer is a triangle", "triangle"),
    ("It's a triangle.", "triangle"), ("There is a triangle.", "triangle"), ("They are red.", "red"),
    ("<answer>The shape in the picture is dark red.</answer>", "dark red"),
    ("It has three sides. It is a triangle.", "triangle"),            # the final sentence counts
    ("It is not a square, it is a triangle.", "triangle"),            # the final clause counts
    ("The landmark is the Eiffel Tower.", "Eiffel tower"),
])
def test_word_gold_stated_by_a_short_sentence(response, gold):
    assert check(response, gold) == Verdict(True, extract_answer(response), "match_text")


@pytest.mark.parametrize("response, gold", [
    ("It is not a triangle.", "triangle"), ("It isn't red", "red"), ("no triangle", "triangle"),
    ("It is never red.", "red"), ("The shape is not red.", "red"),
    ("It is a red triangle.", "triangle"),                             # the gold is not the predicate
    ("It is red or blue.", "blue"), ("It is red and blue.", "red"), ("It is a triangle or a square.", "square"),
    ("It is a triangle. Actually it is a square.", "triangle"),        # the final sentence says otherwise
    ("The cat's triangle", "triangle"), ("triangle shape", "triangle"), ("Which shape is red?", "red"),
    ("Looking at every shape in this picture very carefully one by one it is red", "red"),   # too long
])
def test_sentence_not_stating_the_gold_is_wrong(response, gold):
    v = check(response, gold)
    assert (v.correct, v.reason) == (False, "mismatch"), v


def test_sentence_with_choices_and_negation():
    choices = ["triangle", "square", "circle"]
    assert check("It is a triangle.", "A", choices=choices).reason == "match_choice"
    assert check("It is not a triangle.", "A", choices=choices).reason == "no_choice"


# ----------------------------------------------------------------------------- letters must be stated

COLOURS = ["green", "yellow", "orange", "purple"]


@pytest.mark.parametrize("response", [
    "Which circle is the smallest C",                                 # the case, reproduced
    "The green circles are bigger than the yellow ones, then the smallest C",
    "x y z\nthe smallest C", "<answer>the smallest C</answer>", "It is C", "So the smallest is C",
    "Option C is not right", "I think it's C",
])
def test_capital_ending_text_is_no_option(response):
    v = check(response, "orange", choices=COLOURS)
    assert (v.correct, v.reason) == (False, "no_choice"), v


@pytest.mark.parametrize("response", [
    "<answer>C</answer>", "The answer is C", "answer: C", "\\boxed{C}", "(C)", "Reasoning here.\nC",
    "Reasoning here.\n(C)", "The answer is (C) orange.", "Option C", "<answer>It is C</answer>",
])
def test_stated_letter_counts(response):
    assert check(response, "orange", choices=COLOURS) == Verdict(True, extract_answer(response), "match_choice")


def test_two_bracketed_letters_are_a_hedge():
    assert check("(A) green or (C) orange", "C", choices=COLOURS).reason == "no_choice"


# ----------------------------------------------------------------------------- options in the question

@pytest.mark.parametrize("question", [
    "Which is larger? (A) 3 (B) 5 (C) 7",
    "Which is larger?\nA. 3\nB. 5\nC. 7",
    "Which is larger?\nA: 3\nB: 5\nC: 7",
    "Which is larger? Choices: (A) 3 (B) 5 (C) 7",
    "<image>\nWhich is larger?\nOptions:\nA. 3\nB. 5\nC. 7\nAnswer with the option's letter.",
])
def test_options_parsed_from_the_question(question):
    assert check("B", "B", question=question).reason == "match_choice"
    assert check("The answer is 5", "B", question=question).reason == "match_choice"   # option text
    assert check("3", "B", question=question).reason == "mismatch"
    assert check("It is 7", "5", question=question).reason == "mismatch"               # gold as option text


def test_given_choices_win_over_the_question():
    question = "Which? (A) 3 (B) 5"
    assert check("red", "B", choices=["blue", "red"], question=question).correct
    assert not check("5", "B", choices=["blue", "red"], question=question).correct
    assert check("B", "B", question="A question that lists no options").correct    # plain letter gold


# ----------------------------------------------------------------------------- open (sentence) golds

@pytest.mark.parametrize("gold, choices, expected", [
    ("The cat is sitting on the mat", None, OPEN),
    ("Because the red bar is taller than the blue bar", None, OPEN),
    ("triangle", None, "text"), ("dark red", None, "text"), ("the Eiffel Tower", None, "text"),
    ("yes", None, "yes_no"), ("5", None, "integer"), ("5 cm", None, "integer"), ("2.5", None, "number"),
    ("25%", None, "number"), ("\\frac{1}{2}", None, "number"), ("x^2+2x+1", None, "math"),
    ("a + b + c + d + e + f + g", None, "math"),                       # letters of algebra are not words
    ("B", ["3", "5"], "multiple_choice"), ("5", ["3", "5"], "multiple_choice"),
    ("The cat is sitting on the mat", ["The cat is sitting on the mat", "no cat"], "multiple_choice"),
    ("A, C", ["x", "y", "z"], MULTI_CHOICE), ("AC", ["x", "y", "z"], MULTI_CHOICE),
    ("A and C", ["x", "y", "z"], MULTI_CHOICE), ("AD", ["x", "y", "z"], "text"),   # D is no option
    ("C", None, "text"),                                               # a point "C" is not an option
])
def test_answer_type_for_gold(gold, choices, expected):
    assert answer_type_for_gold(gold, choices) == expected


def test_open_gold_needs_a_judge():
    gold = "The cat is sitting on the mat"
    assert check(f"<answer>{gold}</answer>", gold) == Verdict(False, gold, "needs_judge")
    assert check("A dog.", gold) == Verdict(False, "A dog", "needs_judge")
    assert check("red", "red", answer_type="open") == Verdict(False, "red", "needs_judge")
    assert check("", gold).reason == "no_answer"
    assert check("Yes", "Yes, the cat is on the mat.", answer_type="yes_no").correct   # a hint wins


# ----------------------------------------------------------------------------- several letters

@pytest.mark.parametrize("response", [
    "A, C", "AC", "A and C", "C, A", "(A)(C)", "<answer>A, C</answer>", "\\boxed{A,C}",
    "The answers are A and C", "x and z",
])
def test_multi_choice_same_set(response):
    for gold in ("A, C", "AC", "A and C"):
        v = check(response, gold, choices=["x", "y", "z"])
        assert (v.correct, v.reason) == (True, "match_choices"), (response, gold, v)


@pytest.mark.parametrize("response, reason", [
    ("A", "mismatch"), ("C", "mismatch"), ("A, B, C", "mismatch"), ("A, B", "mismatch"), ("x", "mismatch"),
    ("A, A, C", "no_choice"), ("Not A and C", "no_choice"), ("the smallest C", "no_choice"),
])
def test_multi_choice_other_sets_are_wrong(response, reason):
    v = check(response, "A, C", choices=["x", "y", "z"])
    assert (v.correct, v.reason) == (False, reason), v


def test_multi_choice_hint():
    assert check("A, C", "A,C", answer_type=MULTI_CHOICE).correct                 # no choices: letters A-H
    assert not check("A", "A,C", answer_type=MULTI_CHOICE).correct
    assert check("B", "B", choices=["x", "y"], answer_type=MULTI_CHOICE).correct  # a set of one
