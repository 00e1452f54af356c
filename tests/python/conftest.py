"""Start Strongroom as a real process on an ephemeral loopback port for hvac tests."""
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

import pytest

BIN = os.environ.get("STRONGROOM_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "target", "debug", "strongroom"
)


class Server:
    def __init__(self, args, workdir):
        self.workdir = workdir
        self.proc = subprocess.Popen(
            [BIN, "server", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.addr = None
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.strip().startswith("Api Address:"):
                self.addr = line.split(":", 1)[1].strip()
                break
        assert self.addr, "strongroom did not print its address"
        while time.time() < deadline:
            try:
                urllib.request.urlopen(self.addr + "/v1/sys/seal-status", timeout=2)
                return
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("strongroom did not answer")

    def stop(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def fresh_server():
    """A production-mode server (Shamir seal, SQLite), not yet initialized."""
    workdir = tempfile.mkdtemp(prefix="strongroom-hvac-")
    cfg = os.path.join(workdir, "s.toml")
    with open(cfg, "w") as f:
        f.write(
            f'[storage.sqlite]\npath = "{workdir}/data/db"\n'
            '[[listener]]\naddress = "127.0.0.1:0"\ntls_disable = true\n'
        )
    s = Server(["--config", cfg], workdir)
    yield s
    s.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def dev_server():
    """A dev-mode server with root token 'root' and kv-v2 at secret/."""
    workdir = tempfile.mkdtemp(prefix="strongroom-hvac-dev-")
    s = Server(["--dev", "--dev-root-token-id", "root", "--dev-listen-address", "127.0.0.1:0",
                "--dev-data-dir", workdir], workdir)
    yield s
    s.stop()
    shutil.rmtree(workdir, ignore_errors=True)
