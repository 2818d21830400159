"""sidecar: the local agent service a desktop shell spawns (see ../shared/DESIGN.md)."""

__version__ = "0.1.0"
PROTOCOL = "sidecar/1"
