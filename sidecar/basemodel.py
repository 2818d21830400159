"""The one base of sidecar's pydantic models.

Every model defers building its validator and serializer to first use (pydantic's
``defer_build``), so importing a module costs only the class statement. Before the handshake
the process imports every route module of every part, and built schemas would cost about
0.1 s of CPU there for models most runs never touch. ``tests/test_basemodel.py`` checks that
every model in the package derives from :class:`Model`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any, Protocol, Self

from pydantic import BaseModel, ConfigDict


class DbRow(Protocol):
    """A database row by column name (``sqlite3.Row``, or a mapping)."""

    def keys(self) -> Any: ...
    def __getitem__(self, key: str) -> Any: ...


class Model(BaseModel):
    """A pydantic ``BaseModel`` whose schema is built on first validation or serialisation."""

    model_config = ConfigDict(defer_build=True)

    @classmethod
    def from_db(cls, row: DbRow, *, json_columns: Collection[str] = (),
                renamed: Mapping[str, str] | None = None) -> Self:
        """Build from a database row: each column whose name (or its ``renamed`` column → field
        name) is a field gives that field's value, ``json_columns`` decoded from their JSON text
        (``NULL`` stays ``None``); other columns are ignored. Pydantic's lax mode reads SQLite's
        0/1 as booleans.

        Raises:
            pydantic.ValidationError: the row does not fit the model (a schema bug, not user input).
        """
        fields = cls.model_fields
        values: dict[str, Any] = {}
        for column in row.keys():
            name = renamed.get(column, column) if renamed else column
            if name in fields:
                value = row[column]
                values[name] = json.loads(value) if value is not None and column in json_columns else value
        return cls.model_validate(values)

