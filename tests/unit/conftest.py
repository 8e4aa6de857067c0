"""Unit tests need no cluster and run on fake or injected time, so each one gets a tight deadline: a
test that starts waiting on a real clock fails fast instead of slowing the suite down."""

from __future__ import annotations

from pathlib import Path

import pytest

#: Seconds any single unit test may take (setup and teardown included); a test that needs longer is not
#: a unit test.
UNIT_TEST_TIMEOUT = 5.0
HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(UNIT_TEST_TIMEOUT))
