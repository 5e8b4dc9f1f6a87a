"""The contracts: Arrow schemas of every table Sightline writes, the manifest, ids.

Nothing else in the project defines a column name. Pure: imports only pyarrow.
"""
from schemas.ids import normalize_question, row_id
from schemas.tables import (
    ANSWER_TYPES,
    IMAGE,
    MESSAGE,
    SCHEMA_VERSION,
    SCHEMAS,
    TABLES,
    SchemaError,
    check_table,
    make_reject,
    to_table,
)

__all__ = [
    "ANSWER_TYPES", "IMAGE", "MESSAGE", "SCHEMA_VERSION", "SCHEMAS", "TABLES", "SchemaError",
    "check_table", "make_reject", "normalize_question", "row_id", "to_table",
]
