"""Name templates: {user}, {uuid} and environment variables only; hostile templates fail clearly."""

from __future__ import annotations

import re

import pytest
from kubedask.naming import NameTemplateError, render_name, validate_name


def test_default_template_gives_a_dns_label() -> None:
    assert (
        render_name("dask-{user}-{uuid}", user="Alice.Smith", uuid="1a2b3c4d-5e")
        == "dask-alicesmith-1a2b3c4d-5e"
    )


def test_environment_variables_are_fields() -> None:
    name = render_name("dask-{JUPYTERHUB_USER}-{uuid}", uuid="abc", environ={"JUPYTERHUB_USER": "jovyan"})
    assert name == "dask-jovyan-abc"


def test_uuid_differs_between_clusters() -> None:
    assert render_name("dask-{uuid}", user="u") != render_name("dask-{uuid}", user="u")


@pytest.mark.parametrize(
    "template",
    [
        "{user.__class__}",
        "{user.__class__.__mro__[1].__subclasses__}",
        "{uuid[0]}",
        "{0}",
        "{}",
        "{user!r}",
        "{user:>30}",
        "{user:{uuid}}",
        "{__import__}",
    ],
)
def test_hostile_templates_are_refused(template: str) -> None:
    with pytest.raises(NameTemplateError, match=r"not allowed|may not use|neither"):
        render_name(template, user="alice", uuid="abc", environ={})


def test_unknown_field_names_the_problem() -> None:
    with pytest.raises(
        NameTemplateError, match=re.escape("{TEAM} is neither user, uuid nor a set environment variable")
    ):
        render_name("dask-{TEAM}", environ={})


def test_unbalanced_braces_are_refused() -> None:
    with pytest.raises(NameTemplateError, match="invalid name template"):
        render_name("dask-{user", user="a")


def test_environment_values_cannot_smuggle_invalid_names() -> None:
    # Escaping drops characters a DNS label can't hold, so "{X}" can't inject "/" or "." into the name.
    assert render_name("dask-{X}", environ={"X": "../evil.ns"}) == "dask-evilns"


def test_too_long_and_invalid_names_are_refused() -> None:
    with pytest.raises(NameTemplateError, match="characters"):
        render_name("dask-" + "x" * 60)
    with pytest.raises(NameTemplateError, match="starting with a letter"):
        validate_name("1abc")
    with pytest.raises(NameTemplateError, match="ending with a letter or digit"):
        validate_name("abc-")
