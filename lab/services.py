"""`quantshift lab up|down|status|env`: the lab's background services, their pid files and logs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from lab import monitoring, network, pki, settings, template
from lab.errors import LabError
from lab.pve.auth import Auth


def _state_file(lab: settings.LabSettings) -> Path:
    return lab.state_dir / "lab.json"


def read_state(lab: settings.LabSettings) -> dict[str, Any]:
    path = _state_file(lab)
    return json.loads(path.read_text()) if path.exists() else {}


def _write_state(lab: settings.LabSettings, state: dict[str, Any]) -> None:
    path = _state_file(lab)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, path)


def _alive(pid: int | None, marker: str | tuple[str, ...]) -> bool:
    """True when `pid` runs and its command line carries `marker` (or one of them), so a recycled pid is
    never ours."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return any(m in cmdline for m in ((marker,) if isinstance(marker, str) else marker))


# The servers' modules before they moved into packages: a lab started by an older checkout is still
# recognised and stopped.
def _server_marker(lab: settings.LabSettings) -> tuple[str, ...]:
    return (f"lab.pve --state-dir {lab.state_dir}", f"lab.pve_server --state-dir {lab.state_dir}")


def _redis_marker(lab: settings.LabSettings) -> str:
    return f"redis-server {lab.host}:{lab.redis_port}"  # the process title redis-server gives itself


def _exchange_marker(lab: settings.LabSettings) -> tuple[str, ...]:
    return (f"lab.exchanges --state-dir {lab.state_dir}", f"lab.exchange_server --state-dir {lab.state_dir}")


def _require_root(why: str) -> None:
    if os.geteuid() != 0:
        raise LabError(f"{why} needs root (LXC containers and the lab bridge): run as root, e.g. `sudo quantshift lab up`")


def _ssl_context(lab: settings.LabSettings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(lab.ca_cert))


def _wait_ready(lab: settings.LabSettings, proc: subprocess.Popen[bytes], log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    ctx = _ssl_context(lab)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text().strip().splitlines()[-12:] if log.exists() else []
            raise LabError("the lab API exited at start:\n" + "\n".join(tail))
        try:
            urllib.request.urlopen(lab.api_url + "/version", context=ctx, timeout=2)
            return
        except urllib.error.HTTPError as err:
            if err.code == 401:  # it answers, and it wants credentials: ready
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise LabError(f"the lab API did not answer on {lab.api_url} within {timeout:.0f}s; see {log}")


def up(lab: settings.LabSettings, backend: str, progress: Any = print, with_monitoring: bool = True) -> dict[str, Any]:
    """Start the lab (idempotent); returns its connection facts. Prometheus and Alertmanager start too
    when installed, unless `with_monitoring` is false (the tests that do not look at them)."""
    state = read_state(lab)
    if _alive(state.get("pid"), _server_marker(lab)):
        if state.get("backend") != backend:
            raise LabError(f"the lab is already up with backend {state.get('backend')}: run `quantshift lab down` first")
        if _alive(state.get("exchange_pid"), _exchange_marker(lab)) and _alive(state.get("redis_pid"), _redis_marker(lab)):
            progress(f"the lab is already up ({backend}) at {lab.api_url}")
            return env(lab)
    if backend == "lxc":
        _require_root("the lxc backend")
        missing = [t for t in ("lxc-start", "debootstrap", "ip", "ssh-keygen") if shutil.which(t) is None]
        if missing:
            raise LabError(f"missing tools: {', '.join(missing)}: run `make setup`")
    lab.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (lab.state_dir / "logs").mkdir(exist_ok=True)
    state.update({"backend": backend, "bridge": lab.bridge, "subnet": str(lab.subnet), "port": lab.port})
    _write_state(lab, state)
    pki.ensure_ca(lab.pki_dir)
    Auth.initialise(lab.state_dir / "secrets.json", settings.TOKEN_USER, settings.TOKEN_NAME)
    _write_client_credentials(lab)
    _ensure_exchange_accounts(lab)
    _ensure_ssh_key(lab)
    if backend == "lxc":
        for name, suite in settings.TEMPLATES.items():  # Debian 12 and 13: hosts with Python 3.11 and 3.13
            if not (lab.rootfs_of(name) / "etc" / "os-release").exists():
                progress(f"building the container template {name} with debootstrap {suite} (about a minute, once per machine)")
                template.build(lab.rootfs_of(name), suite=suite)
        if network.ensure_bridge(lab):
            state["bridge_created"] = True
            _write_state(lab, state)
    _stop_pid(int(state.get("pid") or 0), _server_marker(lab))  # a half-up lab from a crash: start clean
    _stop_pid(int(state.get("exchange_pid") or 0), _exchange_marker(lab))
    _stop_pid(int(state.get("redis_pid") or 0), _redis_marker(lab))
    log = lab.state_dir / "logs" / "pve.log"
    env_vars = os.environ | lab.as_env() | {"PYTHONUNBUFFERED": "1"}
    proc = _spawn([sys.executable, "-m", "lab.pve", "--state-dir", str(lab.state_dir), "--backend", backend], log, env_vars)
    state["pid"] = proc.pid
    (lab.state_dir / "pve.pid").write_text(f"{proc.pid}\n")
    _write_state(lab, state)
    _wait_ready(lab, proc, log)
    binds = ["127.0.0.1"] + ([str(lab.gateway)] if network.bridge_exists(lab.bridge) and backend == "lxc" else [])
    ex_log = lab.state_dir / "logs" / "exchanges.log"
    argv = [sys.executable, "-m", "lab.exchanges", "--state-dir", str(lab.state_dir), *(a for b in binds for a in ("--bind", b))]
    ex_proc = _spawn(argv, ex_log, env_vars)
    state["exchange_pid"] = ex_proc.pid
    _write_state(lab, state)
    _wait_port(lab, ex_proc, ex_log, lab.alpaca_port)
    redis_proc = _spawn(["redis-server", str(_redis_conf(lab, binds))], lab.state_dir / "logs" / "redis.log", env_vars)
    state["redis_pid"] = redis_proc.pid
    _write_state(lab, state)
    _wait_redis(lab, redis_proc)
    if with_monitoring and monitoring.available():
        _start_monitoring(lab, state, env_vars, progress)
    progress(
        f"the lab is up ({backend}): {lab.api_url} (pid {proc.pid}, log {log}); "
        f"exchanges: alpaca http://127.0.0.1:{lab.alpaca_port}, coinbase https://127.0.0.1:{lab.coinbase_port} (pid {ex_proc.pid})"
    )
    return env(lab)


def _start_monitoring(lab: settings.LabSettings, state: dict[str, Any], env_vars: dict[str, str], progress: Any) -> None:
    """Prometheus and Alertmanager on loopback, configured from monitoring/ (see lab/monitoring.py)."""
    monitoring.prepare(lab)
    problem = monitoring.check(lab)
    if problem:
        raise LabError(f"the lab's Prometheus configuration is refused by promtool: {problem}")
    for name, argv in monitoring.argv(lab).items():
        _stop_pid(int(state.get(f"{name}_pid") or 0), argv[1])  # its --config.file: this lab's, nobody else's
        log = lab.state_dir / "logs" / f"{name}.log"
        proc = _spawn(argv, log, env_vars)
        state[f"{name}_pid"] = proc.pid
        _write_state(lab, state)
        port = lab.prometheus_port if name == "prometheus" else lab.alertmanager_port
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text().strip().splitlines()[-5:] if log.exists() else []
                raise LabError(f"the lab's {name} did not start on 127.0.0.1:{port}:\n" + "\n".join(tail))
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1).close()
                break
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
    progress(f"monitoring: Prometheus http://127.0.0.1:{lab.prometheus_port}, Alertmanager http://127.0.0.1:{lab.alertmanager_port}")


def _spawn(argv: list[str], log: Path, env_vars: dict[str, str]) -> subprocess.Popen[bytes]:
    """A lab service in its own session (it outlives this command), its output appended to `log`."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env_vars,
            start_new_session=True,
            cwd=str(Path(__file__).resolve().parent.parent),
        )


def _redis_conf(lab: settings.LabSettings, binds: list[str]) -> Path:
    """The lab's Redis: the bots' state and leases, reachable from the containers, an ACL user, AOF on."""
    data = lab.state_dir / "redis"
    data.mkdir(mode=0o700, exist_ok=True)
    password = json.loads((lab.state_dir / "exchanges.json").read_text())["redis_password"]
    conf = data / "redis.conf"
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(
            f"bind {' '.join(binds)}\nport {lab.redis_port}\nprotected-mode yes\ndaemonize no\ndir {data}\n"
            f'appendonly yes\nappendfsync everysec\nsave ""\nuser default off\n'
            f"user quantshift on >{password} ~qs:* &* +@all -@admin -@dangerous +info\n"
        )
    return conf


def _wait_redis(lab: settings.LabSettings, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    import redis

    password = json.loads((lab.state_dir / "exchanges.json").read_text())["redis_password"]
    client = redis.Redis(host=lab.host, port=lab.redis_port, username="quantshift", password=password, socket_timeout=1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"the lab's redis-server exited at start; see {lab.state_dir / 'logs' / 'redis.log'}")
        try:
            client.ping()
            return
        except redis.RedisError:
            time.sleep(0.05)
    raise LabError(f"the lab's Redis did not answer on port {lab.redis_port} within {timeout:.0f}s")


def _wait_port(lab: settings.LabSettings, proc: subprocess.Popen[bytes], log: Path, port: int, timeout: float = 20) -> None:
    """Ready when our exchange answers its admin call: another program on the port would not know our token."""
    token = json.loads((lab.state_dir / "exchanges.json").read_text())["admin_token"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text().strip().splitlines()[-12:] if log.exists() else []
            raise LabError("the lab exchanges exited at start:\n" + "\n".join(tail))
        try:
            req = urllib.request.Request(f"http://{lab.host}:{port}/lab/stats", headers={"X-Lab-Admin": token})
            urllib.request.urlopen(req, timeout=2).close()
            return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise LabError(f"the lab exchanges did not listen on port {port} within {timeout:.0f}s; see {log}")


def _ensure_exchange_accounts(lab: settings.LabSettings) -> None:
    """exchanges.json (0600): API keys for a paper and a live account on each lab exchange.

    Each account has a second key, `standby`, as an operator gives each bot host its own revocable key:
    the exchange records which key placed each order, so chaos tests can tell two bots apart."""
    import secrets as pysecrets

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = lab.state_dir / "exchanges.json"
    if path.exists():
        return
    conf: dict[str, Any] = {
        "admin_token": pysecrets.token_hex(16),
        "redis_password": pysecrets.token_urlsafe(24),
        "alpaca": {},
        "coinbase": {},
    }

    def alpaca_key(account: str) -> dict[str, str]:
        return {"key_id": f"LAB{account.upper()}{pysecrets.token_hex(6).upper()}", "secret_key": pysecrets.token_urlsafe(30)}

    def coinbase_key(account: str) -> dict[str, str]:
        key = ec.generate_private_key(ec.SECP256R1())
        return {
            "key_name": f"organizations/quantshift-lab/apiKeys/{account}-{pysecrets.token_hex(8)}",
            "private_key": key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode(),
            "public_key": key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode(),
        }

    for account in ("paper", "live"):
        conf["alpaca"][account] = alpaca_key(account) | {"cash": 100_000.0, "standby": alpaca_key(account)}
        conf["coinbase"][account] = coinbase_key(account) | {"cash": 100_000.0, "standby": coinbase_key(account)}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(conf, fh, indent=1)


def _write_client_credentials(lab: settings.LabSettings) -> None:
    """credentials.yml (0600): the token a provisioning spec's endpoint.credentials_file points at."""
    path = lab.state_dir / "credentials.yml"
    if path.exists():
        return
    facts = env(lab)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(
            f'# The lab\'s Proxmox API token (generated by `quantshift lab up`).\ntoken_id: "{facts["token_id"]}"\ntoken_secret: "{facts["token_secret"]}"\n'
        )


def _ensure_ssh_key(lab: settings.LabSettings) -> None:
    if lab.ssh_key.exists():
        return
    lab.ssh_key.parent.mkdir(mode=0o700, exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "quantshift-lab", "-f", str(lab.ssh_key)], check=True)


def _stop_pid(pid: int, marker: str | tuple[str, ...], grace: float = 10) -> None:
    if not _alive(pid, marker):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _alive(pid, marker):
        time.sleep(0.05)
    if _alive(pid, marker):
        os.kill(pid, signal.SIGKILL)


def down(lab: settings.LabSettings, purge: bool = False, progress: Any = print) -> None:
    """Stop what the lab started and remove what it created (the template cache too with `purge`)."""
    state = read_state(lab)
    _stop_pid(int(state.get("pid") or 0), _server_marker(lab))
    _stop_pid(int(state.get("exchange_pid") or 0), _exchange_marker(lab))
    _stop_pid(int(state.get("redis_pid") or 0), _redis_marker(lab))
    for name, argv in monitoring.argv(lab).items():
        _stop_pid(int(state.get(f"{name}_pid") or 0), argv[1])
    if lab.lxc_path.is_dir():
        for ct_dir in sorted(p for p in lab.lxc_path.iterdir() if (p / "config").exists()):
            name = ct_dir.name
            info = subprocess.run(
                ["lxc-info", "-P", str(lab.lxc_path), "-n", name, "-s", "-H"], capture_output=True, text=True, check=False
            )
            if info.stdout.strip() == "RUNNING":
                progress(f"stopping container {name}")
                subprocess.run(["lxc-stop", "-P", str(lab.lxc_path), "-n", name, "-k"], capture_output=True, check=False)
    if state.get("bridge_created"):
        network.remove_bridge(str(state.get("bridge", lab.bridge)))
    if lab.state_dir.exists():
        shutil.rmtree(lab.state_dir)
    if purge and lab.cache_dir.exists():
        shutil.rmtree(lab.cache_dir)
    progress("the lab is down" + (" and its template cache removed" if purge else ""))


def status(lab: settings.LabSettings) -> dict[str, Any]:
    state = read_state(lab)
    running = _alive(state.get("pid"), _server_marker(lab))
    out: dict[str, Any] = {"up": running, "state_dir": str(lab.state_dir)}
    if not state:
        return out
    out |= {
        "backend": state.get("backend"),
        "pid": state.get("pid") if running else None,
        "api_url": lab.api_url,
        "bridge": state.get("bridge"),
        "subnet": state.get("subnet"),
        "log": str(lab.state_dir / "logs" / "pve.log"),
    }
    if running:
        facts = env(lab)
        req = urllib.request.Request(
            lab.api_url + "/cluster/resources?type=vm",
            headers={"Authorization": f"PVEAPIToken={facts['token_id']}={facts['token_secret']}"},
        )
        with urllib.request.urlopen(req, context=_ssl_context(lab), timeout=5) as resp:
            vms = json.load(resp)["data"]
        out["containers"] = len(vms)
        out["running"] = sum(1 for v in vms if v["status"] == "running")
    return out


def env(lab: settings.LabSettings) -> dict[str, Any]:
    """The connection facts a client needs (this includes the token secret)."""
    secrets_path = lab.state_dir / "secrets.json"
    if not secrets_path.exists():
        raise LabError("the lab is not set up: run `quantshift lab up`")
    secrets = json.loads(secrets_path.read_text())
    token_id = f"{settings.TOKEN_USER}!{settings.TOKEN_NAME}"
    return {
        "api_url": lab.api_url,
        "host": lab.host,
        "port": lab.port,
        "user": settings.TOKEN_USER,
        "token_name": settings.TOKEN_NAME,
        "token_id": token_id,
        "token_secret": secrets["tokens"][token_id]["value"],
        "readonly_token_id": f"{settings.TOKEN_USER}!readonly",
        "readonly_token_secret": secrets["tokens"][f"{settings.TOKEN_USER}!readonly"]["value"],
        "password": secrets["passwords"][settings.TOKEN_USER],
        "ca_cert": str(lab.ca_cert),
        "node": settings.NODE_NAME,
        "storage": settings.STORAGE,
        "template": settings.TEMPLATE_VOLID,
        "bridge": lab.bridge,
        "subnet": str(lab.subnet),
        "gateway": str(lab.gateway),
        "ssh_private_key": str(lab.ssh_key),
        "ssh_public_key": lab.ssh_key.with_suffix(".pub").read_text().strip() if lab.ssh_key.with_suffix(".pub").exists() else None,
        "backend": read_state(lab).get("backend"),
    } | _exchange_facts(lab)


def _exchange_facts(lab: settings.LabSettings) -> dict[str, Any]:
    path = lab.state_dir / "exchanges.json"
    if not path.exists():
        return {}
    conf = json.loads(path.read_text())
    return {
        "exchange_admin_token": conf["admin_token"],
        "alpaca_url": f"http://{lab.host}:{lab.alpaca_port}",
        "alpaca_url_from_containers": f"http://{lab.gateway}:{lab.alpaca_port}",
        "alpaca": {
            name: {"key_id": a["key_id"], "secret_key": a["secret_key"], "standby": a.get("standby")} for name, a in conf["alpaca"].items()
        },
        "coinbase_base_url": f"{lab.host}:{lab.coinbase_port}",
        "coinbase_base_url_from_containers": f"{lab.gateway}:{lab.coinbase_port}",
        "coinbase": {
            name: {
                "key_name": a["key_name"],
                "private_key": a["private_key"],
                "standby": {k: v for k, v in a["standby"].items() if k != "public_key"} if a.get("standby") else None,
            }
            for name, a in conf["coinbase"].items()
        },
        "exchange_ca_cert": str(lab.ca_cert),
        "redis_url": f"redis://quantshift:{conf['redis_password']}@{lab.host}:{lab.redis_port}/0",
        "redis_url_from_containers": f"redis://quantshift:{conf['redis_password']}@{lab.gateway}:{lab.redis_port}/0",
        "webhook_url": f"http://{lab.host}:{lab.webhook_port}/hook/lab",
        "webhook_url_from_containers": f"http://{lab.gateway}:{lab.webhook_port}/hook/lab",
    }


def webhooks(lab: settings.LabSettings, clear: bool = False) -> list[dict[str, Any]]:
    """What the lab's webhook receiver got, oldest first (then forgotten with `clear`)."""
    path = lab.state_dir / "exchanges.json"
    if not path.exists():
        raise LabError("the lab is not set up: run `quantshift lab up`")
    headers = {"X-Lab-Admin": json.loads(path.read_text())["admin_token"]}
    base = f"http://{lab.host}:{lab.webhook_port}/lab/webhook/received"
    try:
        with urllib.request.urlopen(urllib.request.Request(base, headers=headers), timeout=5) as answer:
            got: list[dict[str, Any]] = json.load(answer)
        if clear:
            urllib.request.urlopen(urllib.request.Request(base, headers=headers, method="DELETE"), timeout=5).close()
    except (urllib.error.URLError, OSError) as err:
        raise LabError(f"the lab's webhook receiver does not answer on {lab.webhook_port} ({err}): is the lab up?") from None
    return got
