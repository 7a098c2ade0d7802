"""PostgreSQL and Redis for the tests that need them: started when they are down.

    python tests/infra.py ensure
"""

import glob
import os
import socket
import subprocess
import sys
import time

POSTGRES = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)


def listening(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=0.5):
            return True
    except OSError:
        return False


def wait_for(address: tuple[str, int], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not listening(address):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start listening on {address[0]}:{address[1]}")
        time.sleep(0.2)


def ensure_postgres() -> None:
    if listening(POSTGRES):
        return
    versions = sorted(os.path.basename(path) for path in glob.glob("/etc/postgresql/*"))
    if not versions:
        raise RuntimeError("PostgreSQL is not running and no cluster is installed under /etc/postgresql.")
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"], check=True)
    wait_for(POSTGRES, "PostgreSQL")


def ensure_redis() -> None:
    if listening(REDIS):
        return
    subprocess.run(
        ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379", "--save", "", "--appendonly", "no"],
        check=True,
    )
    wait_for(REDIS, "Redis")


if __name__ == "__main__":
    if sys.argv[1:] != ["ensure"]:
        sys.exit(__doc__)
    ensure_postgres()
    ensure_redis()
    print("PostgreSQL and Redis are up.")
