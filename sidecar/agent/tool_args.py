"""Tool-call arguments checked with a validator compiled once per tool schema (a shim over
AgentScope 2.0.x's tool-call step).

AgentScope's ``Agent._execute_tool_call`` (``agentscope/agent/_agent.py``, 2.0.11) checks every
tool call's arguments in two steps, both of which rebuild their schema machinery on each call:

1. ``_json_loads_with_repair(tool_call.input, tool.input_schema)`` parses the arguments and hands
   even valid JSON to ``json_repair.repair_json(schema=…)``, which walks the schema, serialises it
   and builds a fresh ``jsonschema`` validator (~1 ms per call here);
2. ``jsonschema.validate(parsed_input, tool.input_schema)`` checks the schema against its
   metaschema and builds another validator (5–15 ms per call for our tools on this machine).

3. ``Toolkit.call_tool`` (``agentscope/tool/_toolkit.py``) then parses the same arguments again
   with ``_json_loads_with_repair(tool_call.input, tool_func.input_schema)`` (another ~1 ms).

AgentScope offers no hook before these steps (its middlewares start at the permission check), and
copying the two long methods would be worse than this, so :func:`install` rebinds those names in
those two modules (:data:`PATCHED_MODULES`):

* ``jsonschema`` (in ``_agent``) → :data:`CACHED_JSONSCHEMA`, whose ``validate`` does what
  ``jsonschema.validate`` does (``validator_for`` + ``check_schema`` + ``best_match`` of
  ``iter_errors``) with the checked validator kept per schema object: the same
  ``ValidationError`` (message and path), so the model gets the same ``Error: …`` text;
* ``_json_loads_with_repair`` (in both) → :func:`loads_tool_input`: arguments that are a JSON object the
  schema accepts are returned as parsed (what the original returns for them); anything else goes
  to the original, so repairs and their error texts are AgentScope's own.

Each call's arguments are checked once, not three times: arguments found valid are remembered
(by schema and text, :data:`CACHE_SIZE` of them), so the toolkit's second parse of the same text
and ``validate`` of the object just returned skip the check (~0.2 ms of ``jsonschema`` per call).

Schemas are cached by identity (a tool builds its ``input_schema`` once; the entry holds the
schema, so its id cannot be reused while cached) in a bounded LRU (the shell's client tools bring
new schema objects per run). A schema must not be changed in place after its first call.

:func:`install` first checks that AgentScope is the version these names were read from
(:data:`SUPPORTED_AGENTSCOPE`) and that the modules still have those names; otherwise it logs a
warning and leaves AgentScope alone (correct, only slower). ``tests/agent/test_tool_args.py``
fails when an upgrade moves the code, so the shim is re-checked rather than silently lost.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

#: AgentScope versions whose ``agent/_agent.py`` was read for this shim (``major.minor.``).
SUPPORTED_AGENTSCOPE = ("2.0.",)
#: Modules whose ``_json_loads_with_repair`` is replaced (the first also gets the cached
#: ``jsonschema``): the tool-call step and the toolkit's call.
PATCHED_MODULES = ("agentscope.agent._agent", "agentscope.tool._toolkit")
#: Compiled validators kept (schemas, by identity).
CACHE_SIZE = 256

_lock = threading.Lock()
_validators: OrderedDict[int, tuple[Any, Any, bool]] = OrderedDict()
#: arguments found valid: ``(id(schema), text)`` → the schema (held, so its id is not reused)
_valid_texts: OrderedDict[tuple[int, str], Any] = OrderedDict()
#: the last object :func:`loads_tool_input` returned as valid, per thread: ``(schema, object)``
_last = threading.local()
_original_loads: Callable[..., dict[str, Any]] | None = None
_installed = False


def compiled_validator(schema: Any) -> tuple[Any, bool]:
    """``(validator, plain)`` for ``schema``: a ``jsonschema`` validator of the schema's draft,
    the schema checked against its metaschema once; ``plain`` says json_repair would validate
    with the same schema (no root ``$ref``, no list-form ``items``), so the fast parse is exact.

    Raises:
        jsonschema.SchemaError: the schema is invalid (not cached: raised on every call, as
            ``jsonschema.validate`` does).
    """
    key = id(schema)
    with _lock:
        hit = _validators.get(key)
        if hit is not None and hit[0] is schema:
            _validators.move_to_end(key)
            return hit[1], hit[2]
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema)
    plain = isinstance(schema, dict) and "$ref" not in schema and not _has_list_items(schema)
    with _lock:
        _validators[key] = (schema, validator, plain)
        while len(_validators) > CACHE_SIZE:
            _validators.popitem(last=False)
    return validator, plain


def _has_list_items(node: Any) -> bool:
    """True when a (sub)schema uses the legacy list form of ``items``, which json_repair rewrites
    to ``prefixItems`` before validating."""
    if isinstance(node, dict):
        if isinstance(node.get("items"), list):
            return True
        return any(_has_list_items(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_list_items(v) for v in node)
    return False


def validate(instance: Any, schema: Any, cls: Any = None, *args: Any, **kwargs: Any) -> None:
    """``jsonschema.validate`` with the schema's checked validator reused.

    Raises:
        jsonschema.ValidationError: the best-matching error (``jsonschema.exceptions.best_match``),
            exactly as ``jsonschema.validate`` raises it.
        jsonschema.SchemaError: the schema itself is invalid.
    """
    import jsonschema

    if cls is not None or args or kwargs:
        jsonschema.validate(instance, schema, cls, *args, **kwargs)
        return
    last = getattr(_last, "valid", None)
    if last is not None and last[1] is instance and last[0] is schema:
        return  # the object loads_tool_input just found valid against this schema
    validator, _ = compiled_validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is not None:
        raise error


def loads_tool_input(json_str: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """AgentScope's ``_json_loads_with_repair`` with a fast path: a JSON object that ``schema``
    accepts (and that has no NaN/Infinity, which AgentScope refuses) is returned as parsed, which
    is what the original returns for it after json_repair's schema pass. Everything else goes to
    the original, so repairs and error messages stay AgentScope's."""
    original = _original_loads
    assert original is not None, "install() first"
    if schema is not None and json_str.strip():
        key = (id(schema), json_str)
        try:
            parsed = json.loads(json_str)
            validator, plain = compiled_validator(schema)
        except Exception:  # malformed JSON or an invalid schema: the original reports it
            return original(json_str, schema)
        with _lock:
            known = _valid_texts.get(key) is schema
            if known:
                _valid_texts.move_to_end(key)
        if not known:
            if not (plain and isinstance(parsed, dict) and validator.is_valid(parsed)):
                return original(json_str, schema)
            try:
                json.dumps(parsed, allow_nan=False)
            except ValueError:
                return original(json_str, schema)
            with _lock:
                _valid_texts[key] = schema
                while len(_valid_texts) > CACHE_SIZE:
                    _valid_texts.popitem(last=False)
        _last.valid = (schema, parsed)
        return parsed
    return original(json_str, schema)


class _CachedJsonschema:
    """Stands in for the ``jsonschema`` module inside ``agentscope.agent._agent``: ``validate``
    is :func:`validate`; every other name is the real module's."""

    def __init__(self, real: ModuleType) -> None:
        self._real = real
        self.validate = validate

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


CACHED_JSONSCHEMA: _CachedJsonschema | None = None


def install() -> bool:
    """Put the cached checks into AgentScope's tool-call step; idempotent, thread-safe.

    Returns True when installed, False (with a warning logged) when the installed AgentScope is
    not one this shim was written against or its modules no longer have those names.
    """
    global _original_loads, _installed, CACHED_JSONSCHEMA
    import importlib

    import agentscope
    import jsonschema as real_jsonschema
    from agentscope._utils import _common

    real: ModuleType = real_jsonschema
    with _lock:
        if _installed:
            return True
        version = str(getattr(agentscope, "__version__", ""))
        modules = [importlib.import_module(name) for name in PATCHED_MODULES]
        if (not version.startswith(SUPPORTED_AGENTSCOPE) or getattr(modules[0], "jsonschema", None) is not real
                or any(getattr(m, "_json_loads_with_repair", None) is not _common._json_loads_with_repair
                       for m in modules)):
            log.warning("agentscope %s: tool-argument checks not sped up (sidecar.agent.tool_args "
                        "was written for %s)", version, "/".join(SUPPORTED_AGENTSCOPE))
            return False
        _original_loads = _common._json_loads_with_repair
        CACHED_JSONSCHEMA = _CachedJsonschema(real)
        modules[0].jsonschema = CACHED_JSONSCHEMA  # type: ignore[attr-defined]
        for m in modules:
            m._json_loads_with_repair = loads_tool_input  # type: ignore[attr-defined]
        _installed = True
        return True


def installed() -> bool:
    """True once :func:`install` has put the cached checks in place."""
    return _installed
