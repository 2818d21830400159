"""The one LiteLLM import: offline environment, no stdout logging, AgentScope logger rerouted."""

from __future__ import annotations

import logging
import os
import warnings

from sidecar.agent.litellm_env import LITELLM_IMPORT_ENV, configure_agentscope_logging, import_litellm


def test_import_litellm_is_idempotent_and_offline() -> None:
    litellm = import_litellm()
    assert import_litellm() is litellm
    for key, value in LITELLM_IMPORT_ENV.items():
        assert os.environ[key] == value
    assert litellm.suppress_debug_info is True
    from litellm.litellm_core_utils.get_model_cost_map import get_model_cost_map_source_info

    assert get_model_cost_map_source_info()["is_env_forced"] is True


def test_library_loggers_propagate_to_the_root_logger_only() -> None:
    import_litellm()
    configure_agentscope_logging()
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "as"):
        log = logging.getLogger(name)
        assert log.handlers == [], name
        assert log.propagate and log.level == logging.WARNING, name


def test_litellm_deprecation_warnings_are_silenced() -> None:
    import_litellm()
    configure_agentscope_logging()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        configure_agentscope_logging()  # re-applies our filter in front of the "default" one
        warnings.warn_explicit("old", DeprecationWarning, "x.py", 1, module="litellm.some_module")
        warnings.warn_explicit("ours", DeprecationWarning, "y.py", 1, module="sidecar.thing")
    assert [str(w.message) for w in caught] == ["ours"]
