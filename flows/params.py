"""A flow's parameters derived from its typed config: one definition of every option.

`takes_config(Config)(body)` returns a function whose signature is Config's fields (names,
types, defaults) and whose docstring lists their descriptions, which is what Prefect reads
for the deployment's parameter schema and the UI. Calling it builds Config(**params) (so
validation is Config's) and runs `body(config)`. The CLI builds its flags from the same
fields (clutch_cli.options), the docs' option tables too.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, TypeVar

from pydantic import BaseModel

R = TypeVar("R")


def signature_of(config: type[BaseModel], returns: Any = inspect.Signature.empty) -> inspect.Signature:
    """Keyword parameters in field order; required fields have no default."""
    params = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=f.annotation,
                                default=inspect.Parameter.empty if f.is_required() else f.get_default(call_default_factory=True))
              for name, f in config.model_fields.items()]
    return inspect.Signature(params, return_annotation=returns)


def docstring_of(config: type[BaseModel], summary: str) -> str:
    """`summary` plus a Google-style Args section with each field's description."""
    lines = [summary.strip(), "", "Args:"]
    for name, f in config.model_fields.items():
        lines.append(f"    {name}: {' '.join((f.description or '').split())}")
    return "\n".join(lines) + "\n"


def takes_config(config: type[BaseModel]) -> Callable[[Callable[[Any], R]], Callable[..., R]]:
    """Decorator: body(config) -> a function of config's fields as keyword parameters."""

    def wrap(body: Callable[[Any], R]) -> Callable[..., R]:
        @functools.wraps(body)
        def entry(**params: Any) -> R:
            return body(config(**params))

        del entry.__wrapped__  # inspect must see our signature, not body's
        entry.__signature__ = signature_of(config, inspect.signature(body).return_annotation)
        entry.__doc__ = docstring_of(config, body.__doc__ or "")
        entry.__annotations__ = {n: f.annotation for n, f in config.model_fields.items()}
        return entry

    return wrap
