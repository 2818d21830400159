"""End-to-end tests: the real ``sidecar serve`` process."""
