"""The API server's faults as kmock scripts them, shared by the controller's and the client's wrapper tests."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from kmock import KubernetesEmulator
from kubernetes.client.exceptions import ApiException

NS = "team-a"
PODS = f"/api/v1/namespaces/{NS}/pods"

#: (code, reason, message) of failures a LIST meets: an expired resourceVersion, throttling, etcd trouble.
LIST_FAULTS = [
    (410, "Expired", "too old resource version: 12 (345)"),
    (429, "TooManyRequests", "the server has received too many requests and has asked us to try again later"),
    (500, "InternalError", "etcdserver: request timed out"),
]


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    """A Kubernetes Status object, as the API server sends with every error."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": code,
            "reason": reason, "message": message}


def api_message(exc: ApiException) -> str:
    """The Status message the API server sent, as the wrapper's error carries it."""
    message: str = json.loads(exc.body or "{}")["message"]
    return message


async def assert_list_fault_surfaces(kmock: KubernetesEmulator, list_pods: Callable[[], Awaitable[Any]],
                                     code: int, reason: str, message: str) -> None:
    """A failing pod LIST raises with the API server's code and message, asked once: no retry is hidden in
    the wrapper (the caller's backoff decides)."""
    kmock[f"get {PODS}"] << code << status(code, reason, message)
    with pytest.raises(ApiException) as info:
        await list_pods()
    assert info.value.status == code and api_message(info.value) == message
    assert len(kmock[f"get {PODS}"]) == 1
