from __future__ import annotations

import pytest
from controller_fakes import FakeKube


@pytest.fixture
def fake_kube() -> FakeKube:
    return FakeKube()
