"""The local cluster's certificates, made with the openssl command line.

One CA signs everything: the API server's serving certificate, client certificates for the admin
(O=system:masters) and each component, and the service-account signing key pair.
"""

from __future__ import annotations

import ipaddress
import subprocess
import tempfile
from pathlib import Path

DAYS = "3650"


def _openssl(*args: str) -> None:
    proc = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def ensure_ca(pki: Path) -> None:
    pki.mkdir(parents=True, exist_ok=True)
    if (pki / "ca.crt").exists():
        return
    _openssl("genrsa", "-out", str(pki / "ca.key"), "2048")
    _openssl(
        "req", "-x509", "-new", "-nodes", "-key", str(pki / "ca.key"), "-subj", "/CN=kubedask-devcluster-ca",
        "-days", DAYS, "-out", str(pki / "ca.crt"),
    )
    # The service-account token signing pair (TokenRequest, projected tokens).
    _openssl("genrsa", "-out", str(pki / "sa.key"), "2048")
    _openssl("rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))


def issue(
    pki: Path,
    name: str,
    common_name: str,
    organization: str | None = None,
    sans: list[str] | None = None,
    server: bool = False,
) -> tuple[Path, Path]:
    """Issue ``<name>.crt``/``<name>.key`` signed by the CA (kept if they already exist)."""
    crt, key = pki / f"{name}.crt", pki / f"{name}.key"
    if crt.exists() and key.exists():
        return crt, key
    subject = f"/CN={common_name}" + (f"/O={organization}" if organization else "")
    usage = "serverAuth,clientAuth" if server else "clientAuth"
    ext = [f"extendedKeyUsage={usage}", "keyUsage=critical,digitalSignature,keyEncipherment"]
    if sans:
        entries = [f"IP:{s}" if _is_ip(s) else f"DNS:{s}" for s in sans]
        ext.append("subjectAltName=" + ",".join(entries))
    with tempfile.TemporaryDirectory() as tmp:
        csr, extfile = Path(tmp) / "req.csr", Path(tmp) / "ext.cnf"
        extfile.write_text("\n".join(ext) + "\n")
        _openssl("genrsa", "-out", str(key), "2048")
        _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"),
            "-CAcreateserial", "-days", DAYS, "-extfile", str(extfile), "-out", str(crt),
        )
    return crt, key


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
