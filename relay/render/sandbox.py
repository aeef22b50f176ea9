"""The template sandbox: jinja2's `ImmutableSandboxedEnvironment`, with its per-operation checks
made cheaper and its verdicts unchanged.

A render runs a few dozen sandboxed calls and attribute reads (`dig(...)`, `t.fields`,
`loop.index`), and jinja2 judges each one afresh: a call goes through `is_safe_callable` and
`Context.call` (two `getattr`s and the pass-context lookups), an attribute read through
`is_internal_attribute` and `modifies_known_mutable` (a dozen `isinstance` checks, five of them
against ABCs). Together with the render context built from a `ChainMap` of the globals, that
was over a third of a render's time (bench/render.py measures the render). Here:

* a call to one of relay's own functions (the filters and globals the renderer registers,
  which are plain functions that are neither `unsafe` nor take the context) calls it directly,
  as `Context.call` would; any other object takes jinja2's path;
* an attribute read checks for `str.format` (which jinja2 wraps) only when it finds a method;
* an attribute verdict is remembered per (type, attribute): jinja2's checks look at nothing
  else (`isinstance` of the type, the name), and the memory is dropped whenever an ABC
  registration could change an `isinstance` answer (`abc.get_cache_token`);
* a template's globals are one flat dict rather than a `ChainMap` over the environment's (the
  environment's globals are complete before the first template is loaded);
* a loaded template is kept in a dict by name (never reloaded: `auto_reload` is off), in front
  of jinja2's locked LRU cache that every render and every `import` went through.
"""

from __future__ import annotations

import abc
import types
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

from jinja2 import Template
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg

_METHODS = (types.MethodType, types.BuiltinMethodType)
_STOPPED = "value was undefined because a callable raised a StopIteration exception"


def _plain_function(obj: Any) -> bool:
    """A function `Context.call` would call as it is, and `is_safe_callable` lets through."""
    return (
        isinstance(obj, types.FunctionType)
        and _PassArg.from_obj(obj) is None
        and _PassArg.from_obj(obj.__call__) is None
        and not getattr(obj, "unsafe_callable", False)
        and not getattr(obj, "alters_data", False)
    )


class FastSandbox(ImmutableSandboxedEnvironment):
    """jinja2's immutable sandbox, its checks short-cut where their answer is already known."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._trusted: dict[int, Callable[..., Any]] = {}
        self._verdicts: dict[tuple[type, str], bool] = {}
        self._abc_token = abc.get_cache_token()
        self._loaded: dict[str, Template] = {}

    def trust(self, functions: Iterable[Any]) -> None:
        """Let sandboxed calls of these functions skip the per-call checks (those that could
        not pass them are left to the checks)."""
        for f in functions:
            if _plain_function(f):
                self._trusted[id(f)] = f

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        function = __self._trusted.get(id(__obj))
        if function is not None and function is __obj:
            # what `Context.call` does for a plain function
            if kwargs:
                kwargs.pop("_block_vars", None)
                kwargs.pop("_loop_vars", None)
            try:
                return function(*args, **kwargs)
            except StopIteration:
                return __self.undefined(_STOPPED)
        return super().call(__context, __obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        # jinja2's, with its check for `str.format` (a bound method) made only for methods
        try:
            value = getattr(obj, attribute)
        except AttributeError:
            try:
                return obj[attribute]
            except (TypeError, LookupError):
                pass
            return self.undefined(obj=obj, name=attribute)
        if not isinstance(value, _METHODS) and self.is_safe_attribute(obj, attribute, value):
            return value
        return super().getattr(obj, attribute)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        kind = type(obj)
        if getattr(obj, "__class__", None) is not kind:  # says it is another class: ask each time
            return super().is_safe_attribute(obj, attr, value)
        token = abc.get_cache_token()
        if token != self._abc_token:
            self._verdicts.clear()
            self._abc_token = token
        key = (kind, attr)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._verdicts[key] = super().is_safe_attribute(obj, attr, value)
        return verdict

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        # jinja2 chains the template's globals over the environment's; every render context
        # then copies the chain key by key in Python. Flat, it is a dict copy in C.
        return {**self.globals, **(d or {})}

    def _load_template(self, name: str, globals: MutableMapping[str, Any] | None) -> Template:
        if globals or self.auto_reload:
            return super()._load_template(name, globals)
        template = self._loaded.get(name)
        if template is None:
            template = self._loaded[name] = super()._load_template(name, globals)
        return template
