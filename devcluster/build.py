"""Builds the local cluster's binaries from the Go module proxy, cached outside the repo.

Each component is built once per pinned version into ``~/.cache/kubedask/bin/<component>-<version>/``;
a later build on the same machine finds the binaries there and takes no time. Kubernetes and etcd are
built inside the small wrapper modules under ``devcluster/gomod/`` (their own go.mod files use replace
directives, which ``go install pkg@version`` refuses); the other tools install directly.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from devcluster import versions
from devcluster.paths import cache_dir

GOMOD = Path(__file__).resolve().parent / "gomod"


class BuildError(RuntimeError):
    """A component failed to build; the message names it and quotes the compiler's output."""


@dataclasses.dataclass(frozen=True)
class Component:
    name: str  # also the cache folder's prefix
    version: str
    binaries: dict[str, str]  # binary name -> Go package
    module_dir: Path | None = None  # build inside this wrapper module; else `go install pkg@version`
    ldflags: tuple[str, ...] = ()

    @property
    def output_dir(self) -> Path:
        return cache_dir() / "bin" / f"{self.name}-{self.version}"

    def is_built(self) -> bool:
        return all((self.output_dir / b).is_file() for b in self.binaries)


def _kubernetes_ldflags(version: str) -> tuple[str, ...]:
    major, minor = version.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    return tuple(flags)


COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in (
        Component(
            "etcd",
            versions.ETCD,
            {"etcd": "go.etcd.io/etcd/server/v3"},
            module_dir=GOMOD / "etcd",
            ldflags=("-s", "-w"),
        ),
        Component(
            "kubernetes",
            versions.KUBERNETES,
            {
                name: f"k8s.io/kubernetes/cmd/{name}"
                for name in (
                    "kube-apiserver",
                    "kube-controller-manager",
                    "kube-scheduler",
                    "kubelet",
                    "kube-proxy",
                    "kubectl",
                )
            },
            module_dir=GOMOD / "kubernetes",
            ldflags=_kubernetes_ldflags(versions.KUBERNETES),
        ),
        Component("kwok", versions.KWOK, {"kwok": "sigs.k8s.io/kwok/cmd/kwok"}, ldflags=("-s", "-w")),
        Component("coredns", versions.COREDNS, {"coredns": "github.com/coredns/coredns"}, ldflags=("-s", "-w")),
        Component(
            "helm",
            versions.HELM,
            {"helm": "helm.sh/helm/v3/cmd/helm"},
            ldflags=(
                "-s",
                "-w",
                "-X helm.sh/helm/v3/internal/version.version=" + versions.HELM,
                # Without these Helm assumes Kubernetes 1.20 for .Capabilities.KubeVersion.
                "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1",
                "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=" + versions.KUBERNETES.split(".")[1],
            ),
        ),
    )
}

# What `up` needs; helm is built on demand by the install tests and the demo.
CLUSTER_COMPONENTS = ("etcd", "kubernetes", "kwok", "coredns")


def _go_env(gobin: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-trimpath")
    env.setdefault("GOTOOLCHAIN", "local")
    if gobin is not None:
        env["GOBIN"] = str(gobin)
    return env


def _go() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise BuildError("the Go toolchain is missing: install Go 1.24+ (it builds the local cluster)")
    return go


def _run_go(component: Component, binary: str, args: list[str], cwd: Path | None, env: dict[str, str]) -> None:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise BuildError(
            f"building {component.name} {component.version} ({binary}) failed "
            f"(exit {proc.returncode}):\n{tail}"
        )


def build_component(component: Component, log: bool = True) -> Path:
    """Build one component into its cache folder (a no-op when it's there) and return that folder."""
    if component.is_built():
        return component.output_dir
    component.output_dir.parent.mkdir(parents=True, exist_ok=True)
    lock = component.output_dir.with_name(component.output_dir.name + ".lock")
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # two processes building the same component wait for each other
        if not component.is_built():
            _build_locked(component, log)
    return component.output_dir


def _build_locked(component: Component, log: bool) -> None:
    staging = component.output_dir.with_name(component.output_dir.name + ".partial")
    staging.mkdir(parents=True, exist_ok=True)
    go = _go()
    ldflags = " ".join(component.ldflags)
    for binary, package in component.binaries.items():
        if (staging / binary).is_file():
            continue  # survived an interrupted earlier build
        started = time.monotonic()
        if log:
            print(
                f"devcluster: building {binary} ({component.name} {component.version}) ...", file=sys.stderr, flush=True
            )
        out = staging / f"{binary}.tmp"
        if component.module_dir is not None:
            args = [go, "build", "-ldflags", ldflags, "-o", str(out), package]
            _run_go(component, binary, args, component.module_dir, _go_env())
            out.rename(staging / binary)
        else:
            gobin = staging / ".gobin"
            args = [go, "install", "-ldflags", ldflags, f"{package}@{component.version}"]
            _run_go(component, binary, args, None, _go_env(gobin))
            built = gobin / Path(package).name
            if not built.exists():  # the root package of a module is named after the module
                built = next(gobin.iterdir())
            built.rename(staging / binary)
            shutil.rmtree(gobin, ignore_errors=True)
        if log:
            print(
                f"devcluster: built {binary} in {time.monotonic() - started:.0f}s",
                file=sys.stderr,
                flush=True,
            )
    if component.output_dir.exists():
        shutil.rmtree(component.output_dir)
    staging.rename(component.output_dir)


def build(names: tuple[str, ...] = CLUSTER_COMPONENTS, log: bool = True) -> None:
    """Build the named components (cached); raises BuildError naming the first that fails."""
    for name in names:
        build_component(COMPONENTS[name], log=log)


def binary(name: str) -> Path:
    """The path of a built binary, building its component first if needed."""
    for component in COMPONENTS.values():
        if name in component.binaries:
            return build_component(component) / name
    raise KeyError(f"no component provides the binary {name!r}")
