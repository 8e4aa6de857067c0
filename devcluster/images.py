"""Offline container images for the local cluster's real node.

No registry is reachable from this machine, so every image a pod needs is built here and imported
into containerd directly:

- a Debian bookworm base root filesystem (debootstrap, from this host's Debian mirror),
- the Dask image: base + the project's exact dask/distributed/numpy/... versions, installed from
  wheels downloaded on the host (the image itself has no network and no CA bundle),
- the controller base image: base + pip + the controller's dependencies, for an offline Dockerfile,
- a static pause image, tagged with the sandbox image name containerd is configured with.

Images are written as docker-archive tars (what `ctr images import` and `docker load` read) and are
cached under ~/.cache/kubedask/images/, keyed by a hash of everything that goes into them, so a second
build is a no-op. Run `python -m devcluster.images` to build them all and print their tags.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata as md
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# Bump to invalidate every cached image when the build recipe changes.
RECIPE = "3"
SUITE = "bookworm"
# Debian bookworm's python3 is 3.11: wheels are fetched for exactly this interpreter and libc.
PY_VERSION = "3.11"
PY_ABI = "cp311"
WHEEL_PLATFORMS = [
    "manylinux2014_x86_64",
    *(f"manylinux_2_{minor}_x86_64" for minor in (17, 24, 27, 28, 31, 34, 35, 36)),
]
BASE_PACKAGES = ["python3"]

DASK_TAG = "ghcr.io/dask/dask:latest"
DASK_PROJECT_REPO = "kubedask.local/dask"
CONTROLLER_BASE_REPO = "kubedask.local/controller-base"
# Repositories of images built here (as opposed to the classic names they also carry).
LOCAL_REPOS = ("kubedask.local/",)
# containerd's sandbox_image is set to this name (node.py), and the local pause image carries it.
PAUSE_TAG = "registry.k8s.io/pause:3.10"

# The Dask image carries these requirements (with their dependency closure) at the versions of the
# running environment, so clients and workers agree on the wire protocol and pickles.
DASK_ROOTS = ["dask[array,diagnostics]", "distributed"]  # diagnostics brings bokeh: the dashboard
# The controller image's third-party dependencies; the project itself is installed by its Dockerfile.
CONTROLLER_ROOTS = [
    "dask[array]",
    "distributed",
    "kubernetes",
    "pydantic",
    "pyyaml",
    "aiohttp",
    "kopf",
    "prometheus-client",
]


class ImageBuildError(RuntimeError):
    """An image build step failed; the message names the step and carries its output tail."""


@dataclass(frozen=True)
class Image:
    """A built image: a docker-archive tar and the tags it carries."""

    tar: Path
    tags: tuple[str, ...]

    @property
    def tag(self) -> str:
        return self.tags[-1]


def cache_dir() -> Path:
    root = Path(os.environ.get("KUBEDASK_CACHE", Path.home() / ".cache" / "kubedask"))
    path = root / "images"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _say(msg: str) -> None:
    print(f"devcluster images: {msg}", file=sys.stderr, flush=True)


def _run(step: str, cmd: list[str], **kwargs: object) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise ImageBuildError(f"{step} failed (exit {proc.returncode}): {' '.join(cmd[:6])} ...\n{tail}")
    return str(proc.stdout)


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@contextlib.contextmanager
def _staging(final: Path) -> Iterator[Path]:
    """A scratch path next to `final`, renamed into place only when the block succeeds."""
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    _remove(tmp)
    try:
        yield tmp
        _remove(final)
        tmp.rename(final)
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


# ---------------------------------------------------------------------------------------------
# Debian base root filesystem


def debian_mirror() -> str:
    """The Debian mirror this host's apt uses (deb822 or one-line sources), for debootstrap."""
    texts = []
    for src in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        with contextlib.suppress(OSError):
            texts.append(src.read_text())
    for text in texts:
        for line in text.splitlines():
            m = re.match(r"\s*URIs:\s*(\S+)", line) or re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)", line)
            if m and m.group(1).rstrip("/").endswith("/debian"):
                return m.group(1)
    return "http://deb.debian.org/debian"


def _base_key() -> str:
    return _digest(RECIPE, SUITE, BASE_PACKAGES, debian_mirror())


def base_rootfs() -> Path:
    """Debian bookworm minbase + python3, as a directory (cached)."""
    final = cache_dir() / f"base-{_base_key()}"
    if (final / "rootfs" / "usr" / "bin" / "python3").exists():
        return final / "rootfs"
    mirror = debian_mirror()
    _say(f"debootstrap {SUITE} minbase + {','.join(BASE_PACKAGES)} from {mirror} (about a minute) ...")
    start = time.monotonic()
    with _staging(final) as tmp:
        rootfs = tmp / "rootfs"
        rootfs.mkdir(parents=True)
        _run(
            "debootstrap",
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                str(rootfs),
                mirror,
            ],
        )
        # Images stay small and reproducible-ish: no package caches, docs or apt lists.
        for sub in (
            "var/cache/apt/archives",
            "var/lib/apt/lists",
            "usr/share/doc",
            "usr/share/man",
            "usr/share/info",
            "var/log",
        ):
            for child in (rootfs / sub).glob("*"):
                if child.name not in ("partial", "lock"):
                    _remove(child)
    _say(f"base rootfs ready in {time.monotonic() - start:.0f}s")
    return final / "rootfs"


# ---------------------------------------------------------------------------------------------
# Python dependency closure pinned to the running environment


def pinned_closure(roots: Iterable[str]) -> list[str]:
    """`name==version` for `roots` and everything they require, as installed in this environment."""
    pins: dict[str, str] = {}
    queue = [Requirement(r) for r in roots]
    seen: set[tuple[str, frozenset[str]]] = set()
    while queue:
        req = queue.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError as exc:
            raise ImageBuildError(
                f"{req.name} must be installed in the Python running devcluster (the images copy its "
                f"versions): run it with the project's virtualenv (scripts/bootstrap.sh prints it)"
            ) from exc
        pins[canonicalize_name(req.name)] = f"{dist.metadata['Name']}=={dist.version}"
        for spec in dist.requires or []:
            dep = Requirement(spec)
            envs = [{"extra": e} for e in req.extras] or [{"extra": ""}]
            if dep.marker is None or any(dep.marker.evaluate(env) for env in envs):
                queue.append(dep)
    return sorted(pins.values(), key=str.lower)


def download_wheels(pins: list[str]) -> Path:
    """Wheels for Debian's python3 (cp311, glibc) into a shared cache dir; pip skips files it has."""
    wheels = cache_dir() / "wheels"
    wheels.mkdir(exist_ok=True)
    platforms = [arg for plat in WHEEL_PLATFORMS for arg in ("--platform", plat)]
    _say(f"downloading {len(pins)} wheels for cp311 manylinux ...")
    _run(
        "pip download",
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "--no-deps",
            "--python-version",
            PY_VERSION,
            "--implementation",
            "cp",
            "--abi",
            PY_ABI,
            "--abi",
            "abi3",
            "--abi",
            "none",
            *platforms,
            "--dest",
            str(wheels),
            *pins,
        ],
    )
    return wheels


def _wheel_files(wheels: Path, pins: list[str]) -> list[Path]:
    """The downloaded wheel file for each pin (by normalised name and version)."""
    by_key: dict[tuple[str, str], Path] = {}
    for whl in wheels.glob("*.whl"):
        name, version = whl.name.split("-")[:2]
        by_key[(canonicalize_name(name), version)] = whl
    files = []
    for pin in pins:
        name, version = pin.split("==")
        path = by_key.get((canonicalize_name(name), version))
        if path is None:
            raise ImageBuildError(f"no wheel for {pin} in {wheels} after pip download")
        files.append(path)
    return files


# ---------------------------------------------------------------------------------------------
# Layers and docker-archive tars


def _tar_layer(rootfs: Path, out: Path, members: list[str]) -> None:
    # GNU tar keeps device nodes, hard links, ownership and xattrs exactly as the runtime expects.
    _run("layer tar", ["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(out), *members])


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def write_docker_archive(out: Path, layers: list[Path], tags: list[str], config: dict[str, object]) -> None:
    """A docker-archive (`docker save` format): manifest.json, an image config, one tar per layer."""
    diff_ids = [f"sha256:{_sha256_file(layer)}" for layer in layers]
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "kubedask devcluster images.py"} for _ in layers],
    }
    config_bytes = json.dumps(image_config, sort_keys=True).encode()
    config_name = f"{hashlib.sha256(config_bytes).hexdigest()}.json"
    layer_names = [f"{d.removeprefix('sha256:')}/layer.tar" for d in diff_ids]
    manifest = [{"Config": config_name, "RepoTags": tags, "Layers": layer_names}]
    with tarfile.open(out, "w") as tar:
        for name, data in ((config_name, config_bytes), ("manifest.json", json.dumps(manifest).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, layer in zip(layer_names, layers, strict=True):
            tar.add(layer, arcname=name)


def _base_layer() -> Path:
    out = cache_dir() / f"base-{_base_key()}.layer.tar"
    if not out.exists():
        rootfs = base_rootfs()
        _say("packing base layer ...")
        with _staging(out) as tmp:
            _tar_layer(rootfs, tmp, ["."])
    return out


def _python_image(
    kind: str,
    roots: list[str],
    extra_pins: list[str],
    tags: list[str],
    config: dict[str, object],
    with_pip: bool,
    scripts: dict[str, str] | None = None,
) -> Image:
    """Base layer + a layer of wheels installed with pip inside a copy of the base rootfs."""
    pins = pinned_closure(roots) + extra_pins
    pip_pin = f"pip=={md.version('pip')}"
    scripts = scripts or {}
    key = _digest(RECIPE, _base_key(), kind, pins, pip_pin, with_pip, config, scripts)
    tags = [t.replace("{key}", key) for t in tags]
    # "py-" keeps these apart from other archives in the cache (e.g. controller-<key>.tar).
    out = cache_dir() / f"py-{kind}-{key}.tar"
    if out.exists():
        return Image(out, tuple(tags))
    start = time.monotonic()
    base_layer = _base_layer()
    wheels = download_wheels([*pins, pip_pin])
    with tempfile.TemporaryDirectory(prefix=f"kubedask-{kind}-", dir=cache_dir()) as scratch:
        rootfs = Path(scratch) / "rootfs"
        _say(f"installing {len(pins)} packages into the {kind} image ...")
        _run("copy base rootfs", ["cp", "-a", str(base_rootfs()), str(rootfs)])
        inbox = rootfs / "tmp" / "wheels"
        inbox.mkdir(parents=True)
        for whl in _wheel_files(wheels, [*pins, pip_pin]):
            shutil.copy2(whl, inbox / whl.name)
        pip_whl = next(inbox.glob("pip-*.whl"))
        # pip runs from its own wheel inside the image, so no pip package is needed in the base. Debian's
        # python marks itself externally managed; this image is ours to manage. Root installs land in
        # /usr/local (Debian's default scheme), which becomes the image's second layer.
        targets = [f"/tmp/wheels/{w.name}" for w in _wheel_files(wheels, pins)]
        if with_pip:
            targets.append(f"/tmp/wheels/{pip_whl.name}")
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "PIP_CONFIG_FILE": "/dev/null"}
        chroot = shutil.which("chroot") or "/usr/sbin/chroot"
        _run(
            f"pip install into the {kind} image",
            [
                chroot,
                str(rootfs),
                "python3",
                f"/tmp/wheels/{pip_whl.name}/pip",
                "install",
                "--no-index",
                "--no-deps",
                "--no-cache-dir",
                "--break-system-packages",
                "--root-user-action=ignore",
                "--disable-pip-version-check",
                "--quiet",
                *targets,
            ],
            env=env,
        )
        shutil.rmtree(inbox)
        for name, text in scripts.items():
            script = rootfs / "usr" / "local" / "bin" / name
            script.write_text(text)
            script.chmod(0o755)
        layer = Path(scratch) / "layer.tar"
        _tar_layer(rootfs, layer, ["./usr/local"])
        _say(f"writing {out.name} ...")
        with _staging(out) as tmp:
            write_docker_archive(tmp, [base_layer, layer], tags, config)
    _say(f"{kind} image built in {time.monotonic() - start:.0f}s ({out.stat().st_size / 1e6:.0f} MB)")
    _prune(f"py-{kind}-*.tar", keep=out)
    return Image(out, tuple(tags))


def _prune(pattern: str, keep: Path, newest: int = 2) -> None:
    """Drop stale archives of one image kind (a dependency bump leaves the old one behind)."""
    archives = sorted(cache_dir().glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in [a for a in archives if a != keep][newest - 1 :]:
        old.unlink(missing_ok=True)


# distributed no longer ships the dask-scheduler / dask-worker console scripts (only `dask scheduler`),
# but classic pod specs and the Dask docs still run them by name, so the image provides them.
_CLI_WRAPPER = """\
#!/usr/bin/python3
import sys

from distributed.cli.{module} import main

# The guard matters: the nanny starts its worker with multiprocessing "spawn", which imports this
# script again as a module.
if __name__ == "__main__":
    sys.exit(main())
"""
CLASSIC_SCRIPTS = {
    "dask-scheduler": _CLI_WRAPPER.format(module="dask_scheduler"),
    "dask-worker": _CLI_WRAPPER.format(module="dask_worker"),
}


def dask_image() -> Image:
    """The Dask image, tagged ghcr.io/dask/dask:latest and kubedask.local/dask:<content key>."""
    return _python_image(
        "dask",
        DASK_ROOTS,
        [],
        [DASK_TAG, f"{DASK_PROJECT_REPO}:{{key}}"],
        {
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "PYTHONUNBUFFERED=1"],
            "Cmd": ["python3"],
            "WorkingDir": "/",
        },
        with_pip=False,
        scripts=CLASSIC_SCRIPTS,
    )


def controller_base_image() -> Image:
    """Python + pip + the controller's dependencies (and setuptools to build the project offline).

    A Dockerfile can start `FROM <controller_base_image().tag>` and run
    `pip install --no-index --no-deps --no-build-isolation .` without any network.
    """
    setuptools_pin = "setuptools==80.9.0"
    return _python_image(
        "controller-base",
        CONTROLLER_ROOTS,
        [setuptools_pin],
        [f"{CONTROLLER_BASE_REPO}:{{key}}"],
        {
            "Env": [
                "PATH=/usr/local/bin:/usr/bin:/bin",
                "LANG=C.UTF-8",
                "PYTHONUNBUFFERED=1",
                "PIP_NO_INDEX=1",
                "PIP_DISABLE_PIP_VERSION_CHECK=1",
                "PIP_BREAK_SYSTEM_PACKAGES=1",
                "PIP_ROOT_USER_ACTION=ignore",
            ],
            "Cmd": ["python3"],
            "WorkingDir": "/",
        },
        with_pip=True,
    )


# ---------------------------------------------------------------------------------------------
# Pause image

_PAUSE_C = r"""
/* The pod sandbox's init: holds the namespaces, reaps orphans, exits on SIGINT/SIGTERM. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void quit(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
  struct sigaction q = {.sa_handler = quit}, r = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
  sigaction(SIGINT, &q, NULL);
  sigaction(SIGTERM, &q, NULL);
  sigaction(SIGCHLD, &r, NULL);
  for (;;) pause();
}
"""


def pause_image() -> Image:
    key = _digest(RECIPE, _PAUSE_C, PAUSE_TAG)
    out = cache_dir() / f"pause-{key}.tar"
    if out.exists():
        return Image(out, (PAUSE_TAG,))
    with tempfile.TemporaryDirectory(prefix="kubedask-pause-", dir=cache_dir()) as scratch:
        root = Path(scratch) / "rootfs"
        root.mkdir()
        src = Path(scratch) / "pause.c"
        src.write_text(_PAUSE_C)
        _run("gcc (pause image)", ["gcc", "-static", "-Os", "-s", "-o", str(root / "pause"), str(src)])
        layer = Path(scratch) / "layer.tar"
        _tar_layer(root, layer, ["./pause"])
        with _staging(out) as tmp:
            write_docker_archive(tmp, [layer], [PAUSE_TAG], {"Entrypoint": ["/pause"], "User": "65535:65535"})
    return Image(out, (PAUSE_TAG,))


def node_images() -> list[Image]:
    """Every image the real node needs, built (or taken from the cache)."""
    return [pause_image(), dask_image()]


def import_images(images: Iterable[Image], ctr: list[str]) -> None:
    """Import docker-archives into containerd's CRI namespace. `ctr` = ctr argv incl. --address."""
    for image in images:
        start = time.monotonic()
        _run(f"ctr import {image.tar.name}", [*ctr, "-n", "k8s.io", "images", "import", str(image.tar)])
        _say(f"imported {', '.join(image.tags)} in {time.monotonic() - start:.1f}s")


def main() -> None:
    start = time.monotonic()
    images = [*node_images(), controller_base_image()]
    for image in images:
        print(f"{image.tar}\t{' '.join(image.tags)}\t{image.tar.stat().st_size / 1e6:.0f} MB")
    _say(f"all images ready in {time.monotonic() - start:.0f}s")


if __name__ == "__main__":
    main()
