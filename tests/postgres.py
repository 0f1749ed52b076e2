"""A throwaway PostgreSQL cluster from the machine's own binaries, on a free local port.

``scripts/test`` installs Debian's ``postgresql`` when it is missing; the tests then start a
private cluster (trust auth on 127.0.0.1 only) and give each test its own database.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text


def _binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[4]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (Debian package 'postgresql'); "
                           "./scripts/test installs it")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """One running server; ``database()`` hands out fresh, empty databases."""

    def __init__(self, *, durable: bool = False) -> None:
        self.bin = _binaries()
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="promotion-pg-"))
        # The server refuses to run as root: run it as the package's own user.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            owner = pwd.getpwnam("postgres")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        data = self.dir / "data"
        self._run("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--no-sync")
        # Tests trade durability for speed; benchmarks keep the server's defaults.
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                   f"-c max_connections=100{'' if durable else ' -c fsync=off'}")
        self._run("pg_ctl", "-D", str(data), "-o", options, "-l", str(self.dir / "log"),
                  "-w", "start")
        self.admin = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")

    def _run(self, program: str, *args: str) -> None:
        subprocess.run([*self._as, str(self.bin / program), *args], check=True,
                       capture_output=True)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """A new empty database; its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        return self.url(name)

    def stop(self) -> None:
        self.admin.dispose()
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)
