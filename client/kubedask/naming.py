"""Cluster names from templates such as ``"dask-{user}-{uuid}"``.

A name template is user-controlled text, and the controller acts as a deputy for whoever wrote it, so it
is never handed to :meth:`str.format` as is: ``"{user.__class__}"`` or ``"{0[x]}"`` would read attributes
or items of our objects. Only bare fields are allowed: ``{user}``, ``{uuid}`` and the names of environment
variables; no attribute access, indexing, conversions (``!r``) or format specs (``:>10``).

Example:
    >>> render_name("dask-{user}-{uuid}", user="Alice", uuid="0123456789")
    'dask-alice-0123456789'
"""

from __future__ import annotations

import getpass
import os
import re
import string
import uuid as uuid_module
from collections.abc import Mapping

from .spec import name_problem

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class NameTemplateError(ValueError):
    """A name template uses something other than {user}, {uuid} or an environment variable."""


def current_user() -> str:
    """The local user name, or ``"user"`` where the process has none (e.g. a container without passwd)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "user"


def short_uuid() -> str:
    """Ten characters of a random UUID, like the classic KubeCluster."""
    return str(uuid_module.uuid4())[:10]


def escape(text: str) -> str:
    """Keep only characters valid in a DNS label (letters lowercased, digits and ``-``)."""
    return "".join(c for c in text.lower() if c in string.ascii_lowercase + string.digits + "-")


def render_name(
    template: str,
    *,
    user: str | None = None,
    uuid: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Fill a name template and return a valid cluster name.

    Raises:
        NameTemplateError: the template uses a field other than ``user``, ``uuid`` or an environment
            variable, or the result is not a usable DNS label.

    Example:
        >>> render_name("dask-{TEAM}-{uuid}", uuid="abc", environ={"TEAM": "ml"})
        'dask-ml-abc'
    """
    environ = os.environ if environ is None else environ
    values = {
        "user": user if user is not None else current_user(),
        "uuid": uuid if uuid is not None else short_uuid(),
    }
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:  # unbalanced braces
        raise NameTemplateError(f"invalid name template {template!r}: {e}") from None

    parts: list[str] = []
    for literal, field, format_spec, conversion in parsed:
        parts.append(literal)
        if field is None:
            continue
        if conversion or format_spec:
            raise NameTemplateError(
                f"name template {template!r}: {{{field}}} may not use conversions or format specs; "
                "only {user}, {uuid} and {ENVIRONMENT_VARIABLE} are supported"
            )
        if field in values:
            parts.append(values[field])
        elif _ENV_NAME.match(field) and field in environ:
            parts.append(environ[field])
        elif _ENV_NAME.match(field):
            raise NameTemplateError(
                f"name template {template!r}: {{{field}}} is neither user, uuid nor a set "
                "environment variable"
            )
        else:
            raise NameTemplateError(
                f"name template {template!r}: {{{field}}} is not allowed; only {{user}}, {{uuid}} and "
                "{ENVIRONMENT_VARIABLE} are supported (no attribute access, indexing or positional fields)"
            )

    name = escape("".join(parts)).strip("-")
    validate_name(name, source=template)
    return name


def validate_name(name: str, source: str | None = None) -> None:
    """Raise :class:`NameTemplateError` unless ``name`` is a usable cluster name (the rule is the schema's,
    :func:`kubedask.spec.name_problem`, so the client refuses exactly what the controller would).

    Example:
        >>> validate_name("analysis")
    """
    problem = name_problem(name)
    if problem is not None:
        origin = f" (from {source!r})" if source is not None and source != name else ""
        raise NameTemplateError(f"cluster name {name!r}{origin} is not usable: {problem}")
