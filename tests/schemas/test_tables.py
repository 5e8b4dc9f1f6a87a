import pyarrow as pa
import pytest

from schemas import SCHEMAS, SchemaError, check_table, make_reject, normalize_question, row_id, to_table


def test_row_id_is_content_hash_of_image_and_normalized_question():
    assert row_id(b"abc", "How many  Red circles?") == row_id(b"abc", "how many red circles?")
    assert row_id(b"abc", "q") != row_id(b"abd", "q")
    assert row_id(b"abc", "q1") != row_id(b"abc", "q2")
    assert len(row_id(b"", "")) == 24
    assert normalize_question("  A\tB\n") == "a b"


def test_schema_violation_is_refused_naming_the_column(hand_built_tables):
    rows = hand_built_tables["rl"]
    t = to_table("rl", rows)
    assert t.num_rows == 2
    bad = t.set_column(t.schema.get_field_index("n_rollouts"), "n_rollouts", pa.array(["x", "y"]))
    with pytest.raises(SchemaError, match="'n_rollouts'"):
        check_table("rl", bad)
    with pytest.raises(SchemaError, match="'solution'"):
        check_table("rl", t.drop_columns(["solution"]))
    with pytest.raises(SchemaError, match="'bogus'"):
        to_table("rl", [dict(rows[0], bogus=1)])
    nulls = t.set_column(t.schema.get_field_index("solution"), "solution", pa.array([None, "1"], pa.string()))
    with pytest.raises(SchemaError, match="'solution' has 1 null"):
        check_table("rl", nulls)


def test_missing_nullable_columns_become_nulls_and_metadata_is_attached():
    t = to_table("rejects", [make_reject("validate", "not_an_image", source="s", source_id=7)])
    assert t.column("detail").to_pylist() == [""]
    assert t.column("question").to_pylist() == [None]
    assert t.column("source_id").to_pylist() == ["7"]
    assert t.column("id").to_pylist()[0].startswith("src-")
    assert b"huggingface" in t.schema.metadata
    assert set(SCHEMAS) == {"examples", "traces", "sft", "rl", "val", "test", "rejects"}
