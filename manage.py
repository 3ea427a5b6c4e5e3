#!/usr/bin/env python3
"""The project's front door: `python3 manage.py serve` and `python3 manage.py test`.

Needs only Python 3.11+. On first use it creates .venv/ and installs the requirements there (again whenever a
requirements file changes), then runs the command inside it. With no DATABASE_URL, `serve` runs on the embedded
PostgreSQL under instance/ and `test` creates its test databases there too.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
REQUIREMENTS = ROOT / "requirements-dev.txt"
STAMP = VENV / ".requirements.sha256"


def _requirements_digest() -> str:
    digest = hashlib.sha256()
    for name in ("requirements.txt", "requirements-dev.txt"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def ensure_environment() -> None:
    """Create .venv and install requirements unless they are already installed as written."""
    if not PYTHON.exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = _requirements_digest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    print("installing requirements into .venv ...", flush=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)], check=True)
    STAMP.write_text(wanted)


def serve(args: list[str]) -> None:
    env = dict(os.environ)
    env.setdefault("HOST", "127.0.0.1")
    env.setdefault("LOG_FORMAT", "text")
    # Local development: the seed's curl examples authenticate with x-user-id / x-user-org headers. Only on the
    # embedded database and a loopback address, where nobody else can send them; the app logs a loud warning while
    # it is on. Anywhere else it takes an explicit AUTH_DEV_HEADERS=1.
    if not env.get("DATABASE_URL") and env["HOST"] in ("127.0.0.1", "localhost", "::1"):
        env.setdefault("AUTH_DEV_HEADERS", "1")
    os.chdir(ROOT)
    os.execve(str(PYTHON), [str(PYTHON), "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app", *args], env)


def test(args: list[str]) -> None:
    os.chdir(ROOT)
    os.execv(str(PYTHON), [str(PYTHON), "-m", "pytest", *args])


COMMANDS = {"serve": serve, "test": test}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python3 {Path(__file__).name} {{{'|'.join(COMMANDS)}}} [args...]")
    ensure_environment()
    COMMANDS[sys.argv[1]](sys.argv[2:])
