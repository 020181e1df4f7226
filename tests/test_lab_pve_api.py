"""The lab's Proxmox API through the real proxmoxer client: lifecycle, auth and every error path."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
import requests
from proxmoxer import ProxmoxAPI
from proxmoxer.core import AuthenticationError, ResourceException

from tests import labkit


def _net(facts: dict[str, Any], host: int) -> str:
    prefix = facts["subnet"].rsplit(".", 1)[0]
    return f"name=eth0,bridge={facts['bridge']},ip={prefix}.{host}/24,gw={facts['gateway']}"


@pytest.fixture(params=["memory", "lxc"])
def lab(request: pytest.FixtureRequest) -> dict[str, Any]:
    facts: dict[str, Any] = request.getfixturevalue(f"{request.param}_lab")
    return facts


def test_lifecycle_create_start_snapshot_rollback_stop_delete(lab: dict[str, Any]) -> None:
    px = labkit.client(lab)
    node = px.nodes(lab["node"])
    vmid, host = 900, 50
    ip = lab["subnet"].rsplit(".", 1)[0] + f".{host}"
    upid = node.lxc.post(
        vmid=vmid,
        ostemplate=lab["template"],
        hostname="qs-test",
        cores=1,
        memory=256,
        swap=0,
        rootfs="local:2",
        net0=_net(lab, host),
        features="nesting=1",
        unprivileged=1,
        onboot=1,
        tags="quantshift;test",
        **{"ssh-public-keys": lab["ssh_public_key"]},
    )
    assert upid.startswith(f"UPID:{lab['node']}:") and ":vzcreate:900:" in upid
    assert labkit.wait(node, upid)["exitstatus"] == "OK"
    config = node.lxc(vmid).config.get()
    assert config["hostname"] == "qs-test" and config["memory"] == 256 and config["tags"] == "quantshift;test"
    assert config["rootfs"] == f"local:{vmid}/vm-{vmid}-disk-0.raw,size=2G"
    assert "lock" not in config and len(config["digest"]) == 40
    assert [c["vmid"] for c in px.cluster.resources.get(type="vm")] == [vmid]
    try:
        assert labkit.wait(node, node.lxc(vmid).status.start.post())["exitstatus"] == "OK"
        assert node.lxc(vmid).status.current.get()["status"] == "running"
        eth0 = [i for i in node.lxc(vmid).interfaces.get() if i["name"] == "eth0"]
        assert eth0 and eth0[0]["inet"] == f"{ip}/24"
        if lab["backend"] == "lxc":
            labkit.wait_ssh(lab, ip)
            booted = labkit.ssh(lab, ip, "systemctl is-system-running --wait; hostname; cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
            state, hostname, limit = booted.stdout.split()
            assert (state, hostname, int(limit)) == ("running", "qs-test", 256 * 1024 * 1024)
            assert labkit.ssh(lab, ip, "echo before > /root/marker").returncode == 0

        assert labkit.wait(node, node.lxc(vmid).snapshot.post(snapname="pre", description="before"))["exitstatus"] == "OK"
        snaps = {s["name"]: s for s in node.lxc(vmid).snapshot.get()}
        assert snaps["pre"]["description"] == "before" and snaps["current"]["parent"] == "pre"
        node.lxc(vmid).config.put(memory=384, digest=node.lxc(vmid).config.get()["digest"])
        if lab["backend"] == "lxc":
            assert labkit.ssh(lab, ip, "echo after > /root/marker").returncode == 0
        assert labkit.wait(node, node.lxc(vmid).snapshot("pre").rollback.post(start=1))["exitstatus"] == "OK"
        assert node.lxc(vmid).config.get()["memory"] == 256  # the snapshot's config came back too
        assert node.lxc(vmid).status.current.get()["status"] == "running"
        if lab["backend"] == "lxc":
            labkit.wait_ssh(lab, ip)
            assert labkit.ssh(lab, ip, "cat /root/marker").stdout.strip() == "before"

        assert labkit.wait(node, node.lxc(vmid).status.stop.post())["exitstatus"] == "OK"
        assert node.lxc(vmid).status.current.get()["status"] == "stopped"
    finally:
        labkit.wait(node, node.lxc(vmid).delete(purge=1, force=1))
    assert node.lxc.get() == []
    with pytest.raises(ResourceException, match="does not exist"):
        node.lxc(vmid).config.get()


def test_error_paths_answer_like_proxmox(lab: dict[str, Any]) -> None:
    px = labkit.client(lab)
    node = px.nodes(lab["node"])
    vmid = 910
    labkit.wait(node, node.lxc.post(vmid=vmid, ostemplate=lab["template"], net0=_net(lab, 60)))
    try:
        with pytest.raises(ResourceException) as dup:
            node.lxc.post(vmid=vmid, ostemplate=lab["template"])
        assert dup.value.status_code == 500 and f"CT {vmid} already exists" in dup.value.content

        with pytest.raises(ResourceException) as bad_net:
            node.lxc.post(vmid=911, ostemplate=lab["template"], net0="bridge=" + lab["bridge"] + ",ip=300.1.1.1/24")
        assert bad_net.value.status_code == 400
        assert set(bad_net.value.errors) == {"net0"}

        with pytest.raises(ResourceException) as outside:
            node.lxc.post(vmid=911, ostemplate=lab["template"], net0=f"name=eth0,bridge={lab['bridge']},ip=192.0.2.10/24,gw=192.0.2.1")
        assert outside.value.status_code == 400 and "outside the lab subnet" in outside.value.errors["net0"]

        with pytest.raises(ResourceException) as template:
            node.lxc.post(vmid=911, ostemplate="local:vztmpl/missing.tar.zst")
        assert template.value.status_code == 500 and "does not exist" in template.value.content

        with pytest.raises(ResourceException) as many:
            node.lxc.post(vmid=99, ostemplate=lab["template"], cores="two", bogus=1, rootfs="nowhere:8")
        assert many.value.status_code == 400
        assert set(many.value.errors) == {"vmid", "cores", "bogus"}

        labkit.wait(node, node.lxc(vmid).status.start.post())
        with pytest.raises(ResourceException) as running:
            node.lxc(vmid).delete()
        assert "is running - destroy failed" in running.value.content
        assert node.lxc(vmid).status.current.get()["status"] == "running"  # nothing changed

        with pytest.raises(ResourceException) as readonly:
            node.lxc(vmid).config.put(unprivileged=0)
        assert readonly.value.status_code == 400 and "read-only" in readonly.value.errors["unprivileged"]
        with pytest.raises(ResourceException, match="detected modified configuration"):
            node.lxc(vmid).config.put(memory=300, digest="0" * 40)

        with pytest.raises(ResourceException) as unauth:
            labkit.client(lab, token_secret="00000000-0000-0000-0000-000000000000").nodes.get()
        assert unauth.value.status_code == 401

        assert [c["vmid"] for c in node.lxc.get()] == [vmid]  # no failed call left anything behind
    finally:
        labkit.wait(node, node.lxc(vmid).delete(force=1, purge=1))


def test_config_update_and_delete_keys(memory_lab: dict[str, Any]) -> None:
    node = labkit.client(memory_lab).nodes(memory_lab["node"])
    labkit.wait(node, node.lxc.post(vmid=920, ostemplate=memory_lab["template"], description="old", onboot=1))
    try:
        digest = node.lxc(920).config.get()["digest"]
        node.lxc(920).config.put(cores=2, description="new", delete="onboot", digest=digest)
        config = node.lxc(920).config.get()
        assert (config["cores"], config["description"], "onboot" in config) == (2, "new", False)
        assert config["digest"] != digest
        with pytest.raises(ResourceException, match="unable to shrink"):
            node.lxc(920).resize.put(disk="rootfs", size="1G")
        labkit.wait(node, node.lxc(920).resize.put(disk="rootfs", size="+2G"))
        assert node.lxc(920).config.get()["rootfs"].endswith("size=6G")
    finally:
        labkit.wait(node, node.lxc(920).delete())


def test_ticket_auth_requires_csrf_on_writes(memory_lab: dict[str, Any]) -> None:
    px = ProxmoxAPI(
        memory_lab["host"], port=memory_lab["port"], user="root@pam", password=memory_lab["password"], verify_ssl=memory_lab["ca_cert"]
    )
    assert px.nodes.get()[0]["node"] == memory_lab["node"]
    ticket, csrf = px.get_tokens()
    url = memory_lab["api_url"] + f"/nodes/{memory_lab['node']}/lxc"
    body = {"vmid": "930", "ostemplate": memory_lab["template"]}
    no_csrf = requests.post(url, data=body, cookies={"PVEAuthCookie": ticket}, verify=memory_lab["ca_cert"], timeout=10)
    assert no_csrf.status_code == 401
    ok = requests.post(
        url, data=body, cookies={"PVEAuthCookie": ticket}, headers={"CSRFPreventionToken": csrf}, verify=memory_lab["ca_cert"], timeout=10
    )
    assert ok.status_code == 200 and ok.json()["data"].startswith("UPID:")
    node = px.nodes(memory_lab["node"])
    labkit.wait(node, ok.json()["data"])
    labkit.wait(node, node.lxc(930).delete())
    with pytest.raises(AuthenticationError):
        ProxmoxAPI(memory_lab["host"], port=memory_lab["port"], user="root@pam", password="wrong", verify_ssl=memory_lab["ca_cert"])
    missing = requests.get(memory_lab["api_url"] + "/nodes", verify=memory_lab["ca_cert"], timeout=10)
    assert missing.status_code == 401 and missing.json() == {"data": None, "message": "No ticket\n"}


def test_expired_and_readonly_tokens(memory_lab: dict[str, Any]) -> None:
    px = labkit.client(memory_lab)
    made = px.access.users("root@pam").token("expired").post(expire=int(time.time()) - 60, privsep=0)
    expired = labkit.client(memory_lab, token_secret=made["value"], token_name="expired")
    with pytest.raises(ResourceException) as err:
        expired.nodes.get()
    assert err.value.status_code == 401 and "expired" in err.value.content
    px.access.users("root@pam").token("expired").delete()

    ro = labkit.client(memory_lab, token_secret=memory_lab["readonly_token_secret"], token_name="readonly")
    assert ro.nodes.get()
    with pytest.raises(ResourceException) as denied:
        ro.nodes(memory_lab["node"]).lxc.post(vmid=940, ostemplate=memory_lab["template"])
    assert denied.value.status_code == 403
    assert px.nodes(memory_lab["node"]).lxc.get() == []


def test_tls_is_from_the_lab_ca_and_verified(memory_lab: dict[str, Any]) -> None:
    with pytest.raises(urllib.error.URLError) as err:
        urllib.request.urlopen(memory_lab["api_url"] + "/version", context=ssl.create_default_context(), timeout=5)
    assert isinstance(err.value.reason, ssl.SSLCertVerificationError)
    with pytest.raises(urllib.error.HTTPError) as auth:  # the lab CA verifies; then auth is what stops us
        urllib.request.urlopen(
            memory_lab["api_url"] + "/version", context=ssl.create_default_context(cafile=memory_lab["ca_cert"]), timeout=5
        )
    assert auth.value.code == 401


def test_storage_nodes_nextid_and_tasks(memory_lab: dict[str, Any]) -> None:
    px = labkit.client(memory_lab)
    node = px.nodes(memory_lab["node"])
    assert [s["storage"] for s in node.storage.get()] == ["local"]
    volids = [c["volid"] for c in node.storage("local").content.get(content="vztmpl")]
    assert volids[0] == memory_lab["template"] and any("debian-13" in v for v in volids)  # Debian 12 (the default) and 13
    assert px.cluster.nextid.get() == "100"
    upid = node.lxc.post(vmid=100, ostemplate=memory_lab["template"])
    labkit.wait(node, upid)
    try:
        assert px.cluster.nextid.get() == "101"
        with pytest.raises(ResourceException) as taken:
            px.cluster.nextid.get(vmid=100)
        assert taken.value.status_code == 400
        log = node.tasks(upid).log.get()
        assert log[-1] == {"n": len(log), "t": "TASK OK"}
        assert upid in [t["upid"] for t in node.tasks.get()]
    finally:
        labkit.wait(node, node.lxc(100).delete())


def test_failed_task_reports_and_leaves_nothing(tmp_path: Any) -> None:
    lab = labkit.lab_settings(tmp_path, "10.231.10.0/24", "qsbrf0")
    with labkit.running_lab(lab, "memory", {"QUANTSHIFT_LAB_FAIL_VMIDS": "950"}) as facts:
        node = labkit.client(facts).nodes(facts["node"])
        status = labkit.wait(node, node.lxc.post(vmid=950, ostemplate=facts["template"]))
        assert status["exitstatus"] != "OK" and "unable to create CT 950" in status["exitstatus"]
        assert node.lxc.get() == []


def test_state_survives_an_api_restart(tmp_path: Any) -> None:
    from lab import services

    lab = labkit.lab_settings(tmp_path, "10.231.11.0/24", "qsbrr0")
    with labkit.running_lab(lab, "memory") as facts:
        node = labkit.client(facts).nodes(facts["node"])
        upid = node.lxc.post(vmid=960, ostemplate=facts["template"], hostname="keeper", start=1)
        labkit.wait(node, upid)
        labkit.wait(node, node.lxc(960).snapshot.post(snapname="s1"))
        services._stop_pid(services.read_state(lab)["pid"], services._server_marker(lab))
        services.up(lab, "memory", progress=lambda *_: None)
        node = labkit.client(services.env(lab)).nodes(facts["node"])
        assert node.lxc(960).config.get()["hostname"] == "keeper"
        assert node.lxc(960).status.current.get()["status"] == "running"
        assert [s["name"] for s in node.lxc(960).snapshot.get()] == ["s1", "current"]
        assert node.tasks(upid).status.get()["exitstatus"] == "OK"


def test_lab_cli_up_status_env_down(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys

    lab = labkit.lab_settings(tmp_path, "10.231.12.0/24", "qsbrc0")
    env = os.environ | lab.as_env()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "quantshift", "lab", *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    assert cli("status").returncode == 3
    try:
        assert cli("up").returncode == 0
        assert cli("up").returncode == 0  # idempotent
        facts = json.loads(cli("env", "--json").stdout)
        assert set(facts) >= {"api_url", "token_id", "token_secret", "ca_cert", "node", "storage", "template"}
        assert facts["token_secret"] not in cli("env").stdout  # only --json reveals the secret
        status = json.loads(cli("status", "--json").stdout)
        assert status["up"] and status["backend"] == "memory"
        pid = status["pid"]
        redis_pid = json.loads((lab.state_dir / "lab.json").read_text())["redis_pid"]
        assert cli("up", "--backend", "lxc").returncode == 1  # already up with another backend
    finally:
        assert cli("down").returncode == 0
    assert not lab.state_dir.exists()
    assert not labkit.pid_running(pid) and not labkit.pid_running(redis_pid)


def test_lab_redis_lets_the_bots_user_touch_only_its_keys(memory_lab: dict[str, Any]) -> None:
    import redis

    bots = redis.Redis.from_url(memory_lab["redis_url"])
    assert bots.set("qs:probe", "1") and bots.get("qs:probe") == b"1"
    with pytest.raises(redis.exceptions.NoPermissionError):
        bots.set("elsewhere", "1")
    with pytest.raises(redis.exceptions.NoPermissionError):
        bots.flushall()
    anonymous = redis.Redis(host="127.0.0.1", port=memory_lab["settings"].redis_port)
    with pytest.raises(redis.exceptions.AuthenticationError):
        anonymous.ping()
    assert str(memory_lab["gateway"]) in memory_lab["redis_url_from_containers"]
