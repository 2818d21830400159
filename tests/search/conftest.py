"""Search tests: the spawned-process fixture of the end-to-end tests, for the laziness test."""

from tests.e2e.conftest import spawn_sidecar  # noqa: F401 (a pytest fixture)
