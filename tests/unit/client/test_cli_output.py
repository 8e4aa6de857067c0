"""The plugin's formatting: kubectl's AGE, aligned columns, colour only on terminals, json/yaml objects."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
import yaml
from kubedask import spec
from kubedask.cli.output import dump, table, use_colour
from kubedask.cli.view import ClusterView, age_of, human_age


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (45, "45s"), (119, "119s"), (120, "2m"), (330, "5m30s"), (600, "10m"), (3725, "62m"),
    (3 * 3600, "3h"), (5 * 3600 + 3 * 60, "5h3m"), (30 * 3600, "30h"), (3 * 86400 + 3600, "3d1h"),
    (10 * 86400, "10d"), (800 * 86400, "2y"), (-5, "0s"),
])
def test_age_is_written_like_kubectls_age_column(seconds: int, text: str) -> None:
    assert human_age(seconds) == text


def test_age_of_a_missing_or_unreadable_timestamp_is_none() -> None:
    now = dt.datetime(2026, 1, 1, 0, 5, tzinfo=dt.UTC)
    assert age_of("2026-01-01T00:00:00Z", now) == "5m"
    assert age_of(None, now) == "<none>"
    assert age_of("yesterday", now) == "<none>"


def test_columns_are_aligned_three_spaces_apart_without_trailing_blanks() -> None:
    text = table(["NAME", "PHASE", "AGE"], [["a", "Running", "5m"], ["longer-name", "Failed", ""]])
    assert text.splitlines() == [
        "NAME          PHASE     AGE",
        "a             Running   5m",
        "longer-name   Failed",
    ]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_colour(Tty()) is True
    assert use_colour(io.StringIO()) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert use_colour(Tty()) is False


def test_coloured_phase_keeps_the_columns_aligned() -> None:
    text = table(["NAME", "PHASE", "AGE"], [["a", "Running", "1s"], ["b", "Failed", "2s"]], colour_column=1,
                 colour=True)
    lines = text.splitlines()
    assert "\x1b[32mRunning\x1b[0m" in lines[1] and "\x1b[31mFailed \x1b[0m" in lines[2]
    plain = [line.replace("\x1b[32m", "").replace("\x1b[31m", "").replace("\x1b[0m", "") for line in lines]
    assert [line.index("AGE") if i == 0 else line.index(f"{i}s") for i, line in enumerate(plain)] == [17, 17, 17]


def request(status: str | None, **data: str) -> dict[str, object]:
    annotations = {spec.STATUS_ANNOTATION: status} if status is not None else {}
    return {"metadata": {"name": "analysis", "namespace": "team-a", "creationTimestamp": "2026-01-01T00:00:00Z",
                         "annotations": annotations}, "data": {"workers": "3", **data}}


def test_view_without_status_says_no_controller_acted_and_shows_the_requested_count() -> None:
    view = ClusterView.of(request(None))
    assert (view.phase, view.workers, view.address("scheduler")) == ("<none>", "-/3", "<none>")
    assert "no kubedask controller has acted" in view.message


def test_view_with_an_unreadable_status_is_treated_as_no_status() -> None:
    assert ClusterView.of(request("{not json")).status is None


def test_json_and_yaml_objects_carry_the_request_data_and_the_status_verbatim() -> None:
    status = json.dumps({"phase": "Running", "workers": {"requested": 3, "ready": 2}, "schedulerAddress": "tcp://s:8786"})
    obj = ClusterView.of(request(status, adapt='{"minimum": 1}')).to_object()
    assert obj["kind"] == "DaskCluster" and obj["metadata"]["namespace"] == "team-a"
    assert obj["spec"]["adapt"] == '{"minimum": 1}'
    assert obj["status"]["schedulerAddress"] == "tcp://s:8786" and obj["status"]["workers"]["ready"] == 2
    assert json.loads(dump(obj, "json")) == obj
    assert yaml.safe_load(dump(obj, "yaml")) == obj
