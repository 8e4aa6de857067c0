"""The controller image, built from the repository's Dockerfile without any network, for the real node.

The Dockerfile is the one users build; here it gets the offline base from devcluster.images (Debian +
Python + every dependency + setuptools) as BASE_IMAGE, so pip only installs kubedask itself, and
the build runs with ``--network none``, which proves it downloads nothing.

Debian's dockerd is started just for the build (its own data root under ~/.cache/kubedask/docker,
no iptables, no bridge) and stopped afterwards. The result is saved as a docker-archive under
~/.cache/kubedask/images/, keyed by a hash of the Dockerfile, the package sources and the base, so
an unchanged tree costs nothing; `import_into_node` loads it into the real node's containerd.

The image carries two tags: ``kubedask.local/controller:<version>-<key>`` (unique per build; tests and
the demo install exactly this one) and the published name the chart and manifests default to
(``ghcr.io/kubedask/kubedask-controller:<version>``), so `kubectl apply -f manifests/` works as is.

    python -m devcluster.controller_image          # build (cached) and print the tags
    python -m devcluster.controller_image --import # ... and import into the running cluster's node
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

from devcluster import images
from devcluster.paths import cache_dir

REPO = Path(__file__).resolve().parent.parent
LOCAL_REPO = "kubedask.local/controller"
PUBLISHED_REPO = "ghcr.io/kubedask/kubedask-controller"
# What goes into the image (mirrors .dockerignore's allow-list); the cache key hashes exactly these.
SOURCES = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "client", "controller")
KEEP_ARCHIVES = 2  # older controller archives are deleted (each is a few hundred MB)
# dockerd's sockets live under /run: the data root's path can be too long for a unix socket.
RUN_DIR = Path("/run/kubedask-docker")


class ControllerImageError(RuntimeError):
    """Building or importing the controller image failed; the message says which step and why."""


def _say(msg: str) -> None:
    print(f"devcluster controller image: {msg}", file=sys.stderr, flush=True)


def version() -> str:
    """The package version (pyproject.toml); also the chart's version and the image's published tag."""
    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


def _source_files() -> Iterator[Path]:
    for name in SOURCES:
        path = REPO / name
        if path.is_file():
            yield path
        elif path.is_dir():
            for file in sorted(path.rglob("*")):
                if (
                    file.is_file()
                    and "__pycache__" not in file.parts
                    and not file.name.endswith(".pyc")
                    and ".egg-info" not in str(file)
                ):
                    yield file


def source_key(base_tag: str) -> str:
    digest = hashlib.sha256(base_tag.encode())
    for file in _source_files():
        digest.update(str(file.relative_to(REPO)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def tags(key: str) -> tuple[str, str]:
    """(published alias, unique local tag); Image.tag is the unique one."""
    return f"{PUBLISHED_REPO}:{version()}", f"{LOCAL_REPO}:{version()}-{key}"


def build(progress: bool = True) -> images.Image:
    """Build the controller image (or take it from the cache) and return its archive and tags."""
    base = images.controller_base_image()
    key = source_key(base.tag)
    image_tags = tags(key)
    out = images.cache_dir() / f"controller-{key}.tar"
    if out.exists():
        return images.Image(out, image_tags)
    if not (REPO / "README.md").exists():
        raise ControllerImageError("README.md is missing: pyproject.toml names it as the package readme")
    started = time.monotonic()
    with dockerd() as docker:
        if subprocess.run([*docker, "image", "inspect", base.tag], capture_output=True).returncode != 0:
            _say(f"loading the offline base image {base.tag} ...")
            _run("docker load", [*docker, "load", "-i", str(base.tar)])
        _say(f"docker build (offline, --network none) -> {image_tags[1]} ...")
        cmd = [
            *docker,
            "build",
            "--network",
            "none",
            "--file",
            str(REPO / "Dockerfile"),
            "--build-arg",
            f"BASE_IMAGE={base.tag}",
            "--build-arg",
            "PIP_INSTALL_FLAGS=--no-build-isolation --no-index",
            "--build-arg",
            f"VERSION={version()}",
            "--label",
            f"io.kubedask.source-key={key}",
        ]
        for tag in image_tags:
            cmd += ["--tag", tag]
        _stream("docker build", [*cmd, str(REPO)], progress)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        try:
            _run("docker save", [*docker, "save", "--output", str(tmp), *image_tags])
            tmp.rename(out)
        finally:
            tmp.unlink(missing_ok=True)
        # Keep dockerd's store from growing with every rebuild: drop the now-untagged layers.
        subprocess.run([*docker, "image", "prune", "--force"], capture_output=True)
    _prune_archives(keep=out)
    _say(f"built in {time.monotonic() - started:.0f}s ({out.stat().st_size / 1e6:.0f} MB)")
    return images.Image(out, image_tags)


def import_into_node(cluster: object, image: images.Image) -> None:
    """Import the image into the real node's containerd (CRI namespace), unless it's there already."""
    from devcluster import node

    ctr = node.NodeDirs(cluster).ctr()  # type: ignore[arg-type]
    listed = subprocess.run([*ctr, "-n", "k8s.io", "images", "ls", "-q"], capture_output=True, text=True)
    if listed.returncode != 0:
        raise ControllerImageError(f"the real node's containerd does not answer: {listed.stderr.strip()}")
    have = set(listed.stdout.split())
    # The unique tag proves this exact build is there; the alias is re-pointed at it every time.
    if image.tag in have and _image_id(ctr, image.tags[0]) == _image_id(ctr, image.tag):
        return
    images.import_images([image], ctr)


def ensure_in_node(cluster: object, progress: bool = True) -> images.Image:
    """Build (cached) and import: what the demo and the install tests call."""
    image = build(progress=progress)
    import_into_node(cluster, image)
    return image


def _image_id(ctr: list[str], ref: str) -> str | None:
    cmd = [*ctr, "-n", "k8s.io", "images", "ls", f"name=={ref}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()[1:]
    return lines[0].split()[2] if lines else None


def _prune_archives(keep: Path) -> None:
    archives = sorted(
        images.cache_dir().glob("controller-*.tar"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for old in [a for a in archives if a != keep][KEEP_ARCHIVES - 1 :]:
        old.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# A private dockerd, alive only while a build needs it


def _docker_client() -> str:
    # The legacy builder (DOCKER_BUILDKIT=0) is what Debian's dockerd 20.10 offers without extra
    # components, and it honours --network none for every RUN step. Any client that speaks the API works.
    client = shutil.which("docker")
    if client is None:
        raise ControllerImageError("the docker client is missing: apt-get install docker.io")
    return client


@contextlib.contextmanager
def dockerd() -> Iterator[list[str]]:
    """Start dockerd for the duration of the block; yields the docker client argv that talks to it."""
    if shutil.which("dockerd") is None:
        raise ControllerImageError("dockerd is missing: install docker.io (scripts/bootstrap.sh does)")
    root = cache_dir() / "docker"
    root.mkdir(parents=True, exist_ok=True)
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    sock = RUN_DIR / "docker.sock"
    client = [_docker_client(), "--host", f"unix://{sock}"]
    with open(root / "lock", "w") as lock, open(root / "dockerd.log", "ab") as log:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time on this machine
        proc = subprocess.Popen(
            [
                "dockerd",
                "--host",
                f"unix://{sock}",
                "--data-root",
                str(root / "data"),
                "--exec-root",
                str(RUN_DIR / "exec"),
                "--pidfile",
                str(RUN_DIR / "dockerd.pid"),
                # No network for builds: no iptables rules, no docker0 bridge, no sysctl changes.
                "--iptables=false",
                "--ip-forward=false",
                "--ip-masq=false",
                "--bridge=none",
                # The VM lacks CAP_SYS_RESOURCE: never lower an OOM score.
                "--oom-score-adjust=0",
                "--storage-driver=overlay2",
                "--log-level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while subprocess.run([*client, "version"], capture_output=True).returncode != 0:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise ControllerImageError(
                        f"dockerd did not start; see {root / 'dockerd.log'}:\n" + _tail(root / "dockerd.log")
                    )
                time.sleep(0.5)
            yield client
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _env() -> dict[str, str]:
    return dict(os.environ, DOCKER_BUILDKIT="0", DOCKER_CLI_HINTS="false")


def _run(step: str, cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise ControllerImageError(f"{step} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def _stream(step: str, cmd: list[str], progress: bool) -> None:
    """Run a long step, echoing its "Step N/M" lines as progress and keeping the rest for errors."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    assert proc.stdout is not None
    output: list[str] = []
    for line in proc.stdout:
        output.append(line.rstrip())
        if progress and line.startswith("Step "):
            _say(line.rstrip())
    if proc.wait() != 0:
        tail = "\n".join(output[-30:])
        raise ControllerImageError(f"{step} failed (exit {proc.returncode}):\n{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devcluster.controller_image",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--import",
        dest="import_",
        action="store_true",
        help="also import it into the running local cluster's real node",
    )
    parser.add_argument(
        "--name",
        default=os.environ.get("KUBEDASK_CLUSTER", "kubedask"),
        help="the local cluster instance (with --import)",
    )
    args = parser.parse_args(argv)
    try:
        image = build()
        if args.import_:
            from devcluster.cluster import Cluster

            cluster = Cluster.load(args.name)
            if cluster is None:
                print(
                    f"no cluster named {args.name!r}; start one with: python -m devcluster up",
                    file=sys.stderr,
                )
                return 1
            import_into_node(cluster, image)
    except (ControllerImageError, images.ImageBuildError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{image.tar}\t{' '.join(image.tags)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
