#!/usr/bin/env python3
"""Instructions a Strongroom server executes per request, counted by callgrind.

Counts are repeatable on a shared, noisy machine where throughput is not, so they show
what a change to the CPU path saves. Kernel time is not counted, and aws-lc's assembly
runs on valgrind's emulated CPU (no SHA extensions), so RSA and SHA-256 weigh more here
than on the real machine: compare binaries, not workloads.

    python3 bench/tools/instructions.py target/release/strongroom batch 300
    python3 bench/tools/instructions.py /tmp/old-strongroom svc 300

Set CALLGRIND_KEEP=<dir> to keep the callgrind output files there, for
`callgrind_annotate --inclusive=yes <dir>/callgrind.out.*`.

Workloads: `batch` and `svc` (JWT logins with distinct GitLab-shaped CI ID tokens, batch
or service tokens), `read` (one kv-v2 secret), `write` (a new kv-v2 secret per request,
durable: the SQLite writer thread is counted too), `cold` (reads of a random secret in a
random namespace, on the data that `bench --only-scale --scale-dir DIR` populated:
set SCALE_DIR=DIR, and SCALE_NAMESPACES if it is not 100000; every namespace is read once
before the warm-up, as the bench does; nothing is written to it). Needs valgrind and
openssl.

    SCALE_DIR=/tmp/scale100k python3 bench/tools/instructions.py target/release/strongroom cold 2000

With SCALE_NAMESPACES=1, `cold` reads namespace p0's 10 secrets with the root token: the
bench's small case, to compare a cold read with. CALLGRIND_ARGS adds callgrind options,
such as `--cache-sim=yes --LL=2097152,16,64` to count misses of a 2 MiB cache per function.
"""
import glob
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


def main():
    if len(sys.argv) != 4 or sys.argv[2] not in ("batch", "svc", "read", "write", "cold"):
        raise SystemExit(__doc__)
    binary, kind, n = os.path.abspath(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    work = tempfile.mkdtemp(prefix="strongroom-instructions-")
    try:
        run(binary, kind, n, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(binary, kind, n, work):
    key = f"{work}/issuer.pem"
    warm = int(os.environ.get("WARM", "50"))
    tokens = [
        subprocess.check_output([binary, "dev", "ci-token", "--key", key, "--project-path", "g/p",
                                 "--project-id", "42", "--aud", "bench", "--job-id", str(j)]).decode().strip()
        for j in range(1, warm + n + 1)
    ] if kind in ("batch", "svc") else []
    if not tokens:
        subprocess.check_output([binary, "dev", "ci-token", "--key", key, "--project-path", "g/p"])
    port = 18300 + os.getpid() % 1000
    out = f"{work}/callgrind.out"
    data = f"{work}/data"
    if kind == "cold":
        data = os.environ.get("SCALE_DIR") or sys.exit("cold: set SCALE_DIR to a populated --scale-dir")
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *os.environ.get("CALLGRIND_ARGS", "").split(), binary, "server", "--dev",
         "--dev-root-token-id", "root", "--dev-listen-address", f"127.0.0.1:{port}",
         "--dev-data-dir", data],
        env=dict(os.environ, STRONGROOM_DEV_ISSUER_KEY=key, RUST_LOG="warn"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        setup_and_measure(server, port, kind, key, tokens, warm, n)
    finally:
        server.terminate()
        server.wait()
    report(kind, n, binary, out)


def setup_and_measure(server, port, kind, key, tokens, warm, n):
    conn = wait_ready(port)

    def api(method, path, body=None, token="root"):
        conn.request(method, path, body=None if body is None else json.dumps(body),
                     headers={"X-Vault-Token": token} if token else {})
        r = conn.getresponse()
        data = r.read()
        if r.status >= 300:
            raise SystemExit(f"{method} {path}: {r.status} {data[:300]!r}")
        return json.loads(data) if data else None

    if kind == "cold":
        x = 0x9E3779B97F4A7C15
        namespaces = int(os.environ.get("SCALE_NAMESPACES", "100000"))
        # As the bench's scale phase does before it measures: every namespace read once,
        # so the measured reads find each namespace's record remembered (the steady state).
        for p in range(namespaces):
            api("GET", f"/v1/p{p}/secret/data/s{p % 10}")

        def one(i):
            nonlocal x
            x = (x * 6364136223846793005 + 1442695040888963407) % 2**64
            api("GET", f"/v1/p{(x >> 20) % namespaces}/secret/data/s{(x >> 8) % 10}")

        return measure(server, one, warm, n)
    public = subprocess.check_output(["openssl", "pkey", "-in", key, "-pubout"]).decode()
    api("PUT", "/v1/secret/data/bench", {"data": {"username": "svc", "password": "pw"}})
    api("PUT", "/v1/sys/policies/acl/bench",
        {"policy": 'path "secret/data/bench" { capabilities = ["read"] }\n'
                   'path "secret/data/w/*" { capabilities = ["create", "update"] }'})
    api("POST", "/v1/sys/auth/count", {"type": "jwt"})
    api("POST", "/v1/auth/count/config", {"jwt_validation_pubkeys": [public]})
    for name, ty in (("svc", "service"), ("batch", "batch")):
        api("POST", f"/v1/auth/count/role/{name}",
            {"role_type": "jwt", "user_claim": "project_path", "bound_audiences": ["bench"],
             "bound_claims": {"project_id": "42"}, "token_policies": ["bench"],
             "token_ttl": "1h", "token_type": ty})
    reader = api("POST", "/v1/auth/token/create", {"policies": ["bench"]})["auth"]["client_token"]

    def one(i):
        if kind == "read":
            api("GET", "/v1/secret/data/bench", token=reader)
        elif kind == "write":
            api("PUT", f"/v1/secret/data/w/0-{i}", {"data": {"value": f"secret-{i}"}}, token=reader)
        else:
            api("POST", "/v1/auth/count/login", {"role": kind, "jwt": tokens[i]}, token=None)

    measure(server, one, warm, n)


def measure(server, one, warm, n):
    for i in range(warm):
        one(i)
    subprocess.run(["callgrind_control", "-z", str(server.pid)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for i in range(warm, warm + n):
        one(i)
    subprocess.run(["callgrind_control", "-d", str(server.pid)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def report(kind, n, binary, out):
    total = 0
    for f in glob.glob(out + ".*"):
        with open(f) as fh:
            total += next(int(l.split()[1]) for l in fh if l.startswith("summary:"))
    print(f"{kind}: {total / n:,.0f} instructions per request ({n} requests, {binary})")
    keep = os.environ.get("CALLGRIND_KEEP")
    if keep:
        os.makedirs(keep, exist_ok=True)
        for f in glob.glob(out + ".*"):
            shutil.copy(f, keep)


def wait_ready(port):
    for _ in range(1200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            c.request("GET", "/v1/sys/health")
            r = c.getresponse()
            r.read()
            if r.status == 200:
                return c
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("the server did not become ready")


if __name__ == "__main__":
    main()
