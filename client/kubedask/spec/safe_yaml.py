"""Safe, bounded YAML for untrusted request text, and YAML output for the templates a client writes.

Request keys are written by any user of a served namespace and parsed by the controller, so parsing is
size-limited, refuses anchors and aliases ("billion laughs"), bounds nesting and yields plain types only.

Example::

    >>> safe_load_yaml("containers: [{name: w, image: img}]", "worker-template")
    {'containers': [{'name': 'w', 'image': 'img'}]}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from .errors import RequestError

#: Upper bound for each template's text. A ConfigMap may hold 1 MiB in total; pod templates are a few
#: KiB, so anything near the limit is a mistake or an attack on the YAML parser.
MAX_TEMPLATE_BYTES = 128 * 1024
MAX_TEMPLATE_DEPTH = 40


class _NoAliasLoader(yaml.SafeLoader):
    """A SafeLoader that refuses anchors and aliases, which is what makes "billion laughs" bombs work.

    Pod templates have no need for them, and refusing them outright is simpler to reason about than
    counting expanded nodes.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        # An alias (*a) refers to an anchor (&a); refusing both keeps expansion linear in the input.
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise _AliasRefused(event.start_mark)
        if self._depth_exceeded():
            raise _TooDeep(event.start_mark)
        return super().compose_node(parent, index)

    def _depth_exceeded(self) -> bool:
        self._kd_depth = getattr(self, "_kd_depth", 0)
        return bool(self._kd_depth > MAX_TEMPLATE_DEPTH)

    def compose_sequence_node(self, anchor: Any) -> Any:
        return self._nested(super().compose_sequence_node, anchor)

    def compose_mapping_node(self, anchor: Any) -> Any:
        return self._nested(super().compose_mapping_node, anchor)

    def _nested(self, compose: Any, anchor: Any) -> Any:
        self._kd_depth = getattr(self, "_kd_depth", 0) + 1
        try:
            return compose(anchor)
        finally:
            self._kd_depth -= 1


class _AliasRefused(Exception):
    def __init__(self, mark: Any) -> None:
        self.mark = mark


class _TooDeep(Exception):
    def __init__(self, mark: Any) -> None:
        self.mark = mark


#: PyYAML's libyaml (C) loader where it was built with it: ~10x faster than the pure-Python one (1.1 ms ->
#: 0.1 ms for a worker template), and a new request's first pass parses its templates before anything else.
_LIBYAML: type[yaml.CSafeLoader] | None = getattr(yaml, "CSafeLoader", None)


def _check_events(text: str) -> None:
    """:class:`_NoAliasLoader`'s checks on libyaml's events, before anything is built: no anchor, no alias,
    no node nested deeper than :data:`MAX_TEMPLATE_DEPTH`."""
    assert _LIBYAML is not None
    depth = 0
    for event in yaml.parse(text, Loader=_LIBYAML):
        if isinstance(event, yaml.NodeEvent):
            if isinstance(event, yaml.AliasEvent) or event.anchor:
                raise _AliasRefused(event.start_mark)
            if depth > MAX_TEMPLATE_DEPTH:
                raise _TooDeep(event.start_mark)
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def safe_load_yaml(text: str, key: str, max_bytes: int = MAX_TEMPLATE_BYTES) -> Any:
    """Parse untrusted YAML: size-limited, no anchors/aliases, bounded nesting, plain types only."""
    size = len(text.encode("utf-8", errors="replace"))
    if size > max_bytes:
        raise RequestError(
            f"key {key!r} is {size} bytes; at most {max_bytes} bytes are allowed. Pod templates are "
            f"normally a few KiB: remove embedded files or data.", key=key)
    try:
        if _LIBYAML is None:
            return yaml.load(text, Loader=_NoAliasLoader)
        _check_events(text)
        return yaml.load(text, Loader=_LIBYAML)
    except _AliasRefused as exc:
        raise RequestError(
            f"key {key!r} uses a YAML anchor or alias (line {exc.mark.line + 1}); they are not allowed "
            f"in requests. Write the values out in full.", key=key) from None
    except _TooDeep as exc:
        raise RequestError(
            f"key {key!r} is nested more than {MAX_TEMPLATE_DEPTH} levels deep (line "
            f"{exc.mark.line + 1}); a pod template never needs that.", key=key) from None
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RequestError(f"key {key!r} is not valid YAML{where}: {problem}.", key=key) from None


class _NoAliasDumper(yaml.SafeDumper):
    """Writes a value shared by two places in full, twice: the controller refuses anchors and aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_template(template: Mapping[str, Any] | str) -> str:
    """Serialise a template dict as YAML text (a string is returned unchanged).

    Example::

        >>> env = [{"name": "A", "value": "1"}]
        >>> "&" in dump_template({"containers": [{"image": "i", "env": env}, {"image": "j", "env": env}]})
        False
    """
    if isinstance(template, str):
        return template
    return yaml.dump(dict(template), Dumper=_NoAliasDumper, sort_keys=False, default_flow_style=False)
