"""A real OpenID Connect provider for the tests: oauth2-mock-server from npm, installed into
tools/oidc on first use (`make test` installs it when npm is present), run by node on
loopback from tests/oidc/provider.mjs. Locally the tests skip without node and npm; in CI
(CI=true) they fail instead."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

from tests.a11y_support import need

PROVIDER_VERSION = "9.3.0"
ROOT = Path(__file__).resolve().parents[1]
OIDC_DIR = ROOT / "tools" / "oidc"
MODULES = OIDC_DIR / "node_modules"
PACKAGE = MODULES / "oauth2-mock-server" / "package.json"
SCRIPT = ROOT / "tests" / "oidc" / "provider.mjs"
CLIENT_ID = "lmsweb-tests"
CLIENT_SECRET = "a-client-secret-for-tests"


def ensure_provider() -> Path:
    """The pinned oauth2-mock-server, installed into tools/oidc when missing or outdated."""
    installed = json.loads(PACKAGE.read_text()).get("version") if PACKAGE.exists() else None
    if installed != PROVIDER_VERSION:
        npm = shutil.which("npm")
        if npm is None:
            raise FileNotFoundError("npm is needed to install oauth2-mock-server")
        subprocess.run(
            [
                npm,
                "install",
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                "--prefix",
                str(OIDC_DIR),
                f"oauth2-mock-server@{PROVIDER_VERSION}",
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
    return MODULES


def need_provider() -> Path:
    """Skip locally (fail in CI) when node or npm is missing."""
    need(shutil.which("node") is not None, "node is not installed (apt-get install nodejs)")
    need(shutil.which("npm") is not None or PACKAGE.exists(), "npm is not installed")
    return ensure_provider()


@contextmanager
def provider(mode: str = "ok", email: str = "olivia@example.com"):
    """Run the provider; yields its issuer URL. `mode` injects one fault (see provider.mjs)."""
    modules = need_provider()
    env = {**os.environ, "OIDC_MODULES": str(modules), "OIDC_MODE": mode, "OIDC_EMAIL": email}
    process = subprocess.Popen(
        [shutil.which("node") or "node", str(SCRIPT)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line:
            raise RuntimeError(f"the OIDC provider did not start: {process.stderr.read()}")
        yield json.loads(line)["issuer"]
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()


def oidc_config(issuer: str, **extra) -> dict:
    return {
        "OIDC_ISSUER": issuer,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        **extra,
    }


if __name__ == "__main__":
    ensure_provider()
