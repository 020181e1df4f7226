"""A release's venv on the controller, built from its wheelhouse archive exactly as a host builds it:
what the strategy check and the replay gate run, so they judge the code the hosts will run.

Laid out like a host's release directory, so the bot finds its strategy the same way
(`venv/../wheelhouse/strategy.json`):

    build/venvs/<sha256 of the archive, 16>/wheelhouse/   the archive, unpacked
    build/venvs/<...>/venv/                               from the wheelhouse only (no index)
    build/venvs/<...>/.complete                           written last: only a complete one is reused

uv creates the venv and installs in a few seconds; without uv, the standard venv and pip (what a host
without uv does) take about ten times as long. One build at a time per archive (a lock file).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from quantshift_bot.errors import InputError, UserError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = ROOT / "build" / "venvs"


@dataclass(frozen=True)
class ReleaseVenv:
    home: Path

    @property
    def python(self) -> Path:
        return self.home / "venv" / "bin" / "python"

    @property
    def wheelhouse(self) -> Path:
        return self.home / "wheelhouse"


def digest(archive: Path) -> str:
    """The archive's content hash (16 hex), computed once per file as it is now (path, size, mtime)."""
    st = archive.stat()
    return _digest(str(archive.resolve()), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    archive = Path(path)
    h = hashlib.sha256()
    with archive.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def ensure(archive: Path, cache: Path = DEFAULT_CACHE, host_python: str | None = None) -> ReleaseVenv:
    """The venv of the release in `archive`, built once (InputError: not a wheelhouse; UserError: the
    install failed, with pip's or uv's own last line)."""
    if not archive.is_file():
        raise InputError(f"{archive}: no such wheelhouse archive")
    home = cache / digest(archive)
    found = ReleaseVenv(home)
    if (home / ".complete").is_file():
        return found
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / f"{home.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (home / ".complete").is_file():
            return found
        shutil.rmtree(home, ignore_errors=True)
        found.wheelhouse.mkdir(parents=True)
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(found.wheelhouse, filter="data")
        except (tarfile.TarError, OSError) as err:
            shutil.rmtree(home, ignore_errors=True)
            raise InputError(f"{archive}: not a wheelhouse archive ({err})") from None
        requirements = found.wheelhouse / "requirements.txt"
        wanted = ["-r", str(requirements)] if requirements.is_file() else ["quantshift-bot"]
        python = host_python or shutil.which("python3") or sys.executable
        uv = shutil.which("uv") or (str(Path(sys.executable).parent / "uv") if (Path(sys.executable).parent / "uv").is_file() else None)
        if uv:
            steps = [
                [uv, "venv", "--quiet", "--python", python, str(home / "venv")],
                [
                    uv,
                    "pip",
                    "install",
                    "--quiet",
                    "--python",
                    str(found.python),
                    "--no-index",
                    "--find-links",
                    str(found.wheelhouse),
                    *wanted,
                ],
            ]
        else:
            steps = [
                [python, "-m", "venv", str(home / "venv")],
                [str(found.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index",
                 "--find-links", str(found.wheelhouse), *wanted],
            ]  # fmt: skip
        env = {**os.environ, "UV_NO_CONFIG": "1", "PIP_CONFIG_FILE": os.devnull}
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, env=env, timeout=600)
            if done.returncode != 0:
                shutil.rmtree(home, ignore_errors=True)
                last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
                raise UserError(f"cannot build the release's venv from {archive.name}: {last}")
        (home / ".complete").write_text(f"{archive}\n")
    return found
