"""The one base of sidecar's pydantic models.

Every model defers building its validator and serializer to first use (pydantic's
``defer_build``), so importing a module costs only the class statement. Before the handshake
the process imports every route module of every part, and built schemas would cost about
0.1 s of CPU there for models most runs never touch. ``tests/test_basemodel.py`` checks that
every model in the package derives from :class:`Model`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """A pydantic ``BaseModel`` whose schema is built on first validation or serialisation."""

    model_config = ConfigDict(defer_build=True)
