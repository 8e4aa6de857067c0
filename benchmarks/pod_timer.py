"""When pods first met a condition, to the millisecond: a WATCH started before the request is sent.

Polling with a LIST measures in steps of the poll interval plus the LIST's own time (at 10 workers,
0.05 s steps on a 0.1 s start decided the ratio). A watch sees every change as the API server
commits it, so every tool's time is taken the same way, when the event reaches the runner.

One thread per timer reads the stream; :meth:`PodTimer.wait` looks through the counts after each event
for the first that met the condition, so asking late (for Running after created) loses nothing.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

from .kube import Kube, PodCounts, count_pods

#: The longest a watch request runs before it is made again from where it stopped.
WATCH_SECONDS = 300


class PodTimer:
    def __init__(self, kube: Kube, namespace: str, selector: str) -> None:
        self.kube, self.namespace, self.selector = kube, namespace, selector
        self._pods: dict[str, dict[str, Any]] = {}
        #: (monotonic time, counts) after every event, oldest first.
        self._history: list[tuple[float, PodCounts]] = []
        self._changed = threading.Condition()
        self._stopped = threading.Event()
        self._response: Any = None
        self._error: BaseException | None = None
        self._started_from = ""
        self._thread = threading.Thread(target=self._run, name=f"pod-timer:{namespace}", daemon=True)

    def __enter__(self) -> PodTimer:
        self._started_from = self._list()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped.set()
        response = self._response
        if response is not None:
            response.shutdown()  # unblocks the thread's read (close() would wait for it)
        self._thread.join(timeout=10)

    def _list(self) -> str:
        response = self.kube.core.list_namespaced_pod(self.namespace, label_selector=self.selector,
                                                      _preload_content=False)
        listing = json.loads(response.data)
        self._pods = {p["metadata"]["name"]: _kept(p) for p in listing.get("items") or []}
        self._record()
        return str(listing["metadata"]["resourceVersion"])

    def _record(self) -> None:
        with self._changed:
            self._history.append((time.monotonic(), count_pods(self._pods.values())))
            self._changed.notify_all()

    def _run(self) -> None:
        version = self._started_from
        while not self._stopped.is_set():
            try:
                version = self._watch(version)
            except ApiException as exc:
                if exc.status != 410:
                    self._fail(exc)
                    return
                version = self._list()  # fell behind the API server's history: list again
            except Exception as exc:
                if not self._stopped.is_set():
                    self._fail(exc)
                return

    def _watch(self, version: str) -> str:
        self._response = response = self.kube.core.list_namespaced_pod(
            self.namespace, label_selector=self.selector, watch=True, resource_version=version,
            allow_watch_bookmarks=True, timeout_seconds=WATCH_SECONDS, _preload_content=False)
        try:
            for line in response:
                if not line.strip():
                    continue
                event = json.loads(line)
                pod = event["object"]
                if event["type"] == "ERROR":
                    raise ApiException(status=pod.get("code"), reason=pod.get("message"))
                version = pod["metadata"].get("resourceVersion") or version
                if event["type"] == "BOOKMARK":
                    continue
                name = pod["metadata"]["name"]
                if event["type"] == "DELETED":
                    self._pods.pop(name, None)
                else:
                    self._pods[name] = _kept(pod)
                self._record()
        finally:
            response.release_conn()
        return version

    def _fail(self, exc: BaseException) -> None:
        with self._changed:
            self._error = exc
            self._changed.notify_all()

    def wait(self, done: Callable[[PodCounts], bool], timeout: float) -> tuple[float | None, PodCounts]:
        """The monotonic time of the first event after which ``done(counts)`` held, or None when none did
        within ``timeout`` seconds; and the counts then (the last ones on a timeout)."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for at, counts in self._history[seen:]:
                    if done(counts):
                        return at, counts
                seen = len(self._history)
                if self._error is not None:
                    raise RuntimeError(f"the pod watch of {self.namespace} failed: {self._error!r}")
                left = deadline - time.monotonic()
                if left <= 0:
                    return None, self._history[-1][1]
                self._changed.wait(left)


def _kept(pod: dict[str, Any]) -> dict[str, Any]:
    """What count_pods reads of a pod."""
    return {"metadata": {"deletionTimestamp": pod["metadata"].get("deletionTimestamp")},
            "status": {"phase": (pod.get("status") or {}).get("phase")}}
