"""Options listed inside the question text, and image placeholders left in it."""
from __future__ import annotations

import pytest

from curation.answers.options import options_from_question, strip_image_placeholder


@pytest.mark.parametrize("question, expected", [
    ("Which is larger? (A) 3 (B) 5", ("Which is larger?", ["3", "5"])),
    ("Which is larger? (A) 3, (B) 5, (C) 7.5 cm", ("Which is larger?", ["3", "5", "7.5 cm"])),
    ("What colour is the ball?\nA. red\nB. blue", ("What colour is the ball?", ["red", "blue"])),
    ("Pick one.\nA: x\nB: y", ("Pick one.", ["x", "y"])),
    ("Pick one.\nA) x\n\nB) y\nC) z", ("Pick one.", ["x", "y", "z"])),
    ("Which animal? Choices: (A) cat (B) dog (C) bird", ("Which animal?", ["cat", "dog", "bird"])),
    ("Which animal?\nChoices: (A) cat (B) dog", ("Which animal?", ["cat", "dog"])),
    ("How many?\nOptions:\nA. one\nB. two\nC. three", ("How many?", ["one", "two", "three"])),
    ("How many?\nOptions:\nA. one\nB. two\nAnswer with the option's letter from the given choices directly.",
     ("How many?\nAnswer with the option's letter from the given choices directly.", ["one", "two"])),
    ("Is (A) the apex? Answer: (A) yes (B) no", ("Is (A) the apex? Answer:", ["yes", "no"])),   # last run wins
])
def test_options_from_question(question, expected):
    assert options_from_question(question) == expected


@pytest.mark.parametrize("question", [
    "Consider point A. It lies above B. What is the distance?",    # "A." in prose
    "Point A. is the apex.\nThe base is C.",
    "Which is larger? (A) 3",                                      # one option is no list
    "Which is larger? (A) 3 (C) 5",                                # not consecutive
    "Which is larger?\nB. 3\nC. 5",                                # does not start at A
    "Which is larger? (A) (B) 5",                                  # an empty option
    "How many apples are there?", "", None,
])
def test_no_options_in_question(question):
    assert options_from_question(question) is None


@pytest.mark.parametrize("text, expected", [
    ("<image>\nWhat is shown?", "What is shown?"),
    ("<image 1> What is shown?", "What is shown?"),
    ("Look at <img> and answer.", "Look at and answer."),
    ("Compare <image 1> with <image 2>.", "Compare with."),
    ("Question\n<image>\nMore text", "Question\nMore text"),
    ("What is shown? <IMAGE>", "What is shown?"),
    ("No placeholder  here", "No placeholder  here"),               # other spacing is left alone
    ("x < y and y > z", "x < y and y > z"),
])
def test_strip_image_placeholder(text, expected):
    assert strip_image_placeholder(text) == expected
