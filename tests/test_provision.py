"""The provisioner against the lab's API: plan, apply, idempotence, drift, recreate, ownership, destroy, auth."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxmox import apply, client, inventory, plan, spec
from tests import labkit


def spec_text(facts: dict[str, Any], *, extra: dict[int, dict[str, Any]] | None = None, defaults: dict[str, Any] | None = None) -> str:
    prefix = facts["subnet"].rsplit(".", 1)[0]
    doc: dict[str, Any] = {
        "endpoint": {"host": facts["host"], "port": facts["port"], "node": facts["node"], "ca_cert": facts["ca_cert"], "task_timeout": 60},
        "defaults": {
            "template": facts["template"],
            "bridge": facts["bridge"],
            "gateway": facts["gateway"],
            "memory": 256,
            "swap": 0,
            "rootfs": "local:2",
            "ssh_public_keys": [facts["ssh_public_key"]],
        }
        | (defaults or {}),
        "containers": [
            {"vmid": 100 + i, "hostname": f"quantshift-{role}", "role": role, "ip": f"{prefix}.{10 + i}/24"}
            | (extra or {}).get(100 + i, {})
            for i, role in enumerate(("primary", "standby", "paper"))
        ],
    }
    return yaml.safe_dump(doc, sort_keys=False)


@pytest.fixture
def prov(memory_lab: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A spec for the shared memory lab, its token in the environment; the node is emptied afterwards."""
    monkeypatch.setenv(client.TOKEN_ID_ENV, memory_lab["token_id"])
    monkeypatch.setenv(client.TOKEN_SECRET_ENV, memory_lab["token_secret"])
    path = tmp_path / "containers.yml"

    def load(**kw: Any) -> spec.Spec:
        path.write_text(spec_text(memory_lab, **kw))
        return spec.load(path)

    loaded = load()
    api = client.connect(loaded.endpoint, client.credentials(loaded.endpoint))
    yield {"load": load, "api": api, "path": path, "facts": memory_lab, "node": api.nodes(memory_lab["node"])}
    node = api.nodes(memory_lab["node"])
    for ct in node.lxc.get():
        labkit.wait(node, node.lxc(ct["vmid"]).delete(force=1, purge=1))


QUIET = apply.Reporter(None)


def test_plan_apply_then_nothing_to_do(prov: dict[str, Any]) -> None:
    loaded, api, node = prov["load"](), prov["api"], prov["node"]
    first = plan.make(api, loaded)
    assert [i.action for i in first.items] == ["create"] * 3 and first.pending
    assert "3 to create" in plan.render(first)
    outcome = apply.apply(api, loaded, report=QUIET)
    assert outcome.changed and not outcome.errors
    cts = {c["vmid"]: c for c in node.lxc.get()}
    assert sorted(cts) == [100, 101, 102] and {c["status"] for c in cts.values()} == {"running"}
    config = node.lxc(101).config.get()
    assert config["memory"] == 256 and config["unprivileged"] == 1 and config["features"] == "nesting=1"
    assert set(config["tags"].split(";")) == {"managed-by-quantshift", "qs-role-standby"}
    assert "managed-by: quantshift" in config["description"]
    again = apply.apply(api, loaded, report=QUIET)
    assert not again.changed and set(again.actions.values()) == {"noop"}
    assert not plan.make(api, loaded).pending


def test_drift_is_corrected_in_place(prov: dict[str, Any]) -> None:
    loaded, api, node = prov["load"](), prov["api"], prov["node"]
    apply.apply(api, loaded, report=QUIET)
    node.lxc(100).config.put(memory=999, onboot=0)  # someone changed it by hand
    labkit.wait(node, node.lxc(102).status.stop.post())
    changed = prov["load"](extra={101: {"cores": 2}}, defaults={"rootfs": "local:3"})
    drift = {i.spec.vmid: i for i in plan.make(api, changed).items}
    assert {(c.key, c.old, c.new) for c in drift[100].changes} == {("memory", 999, 256), ("onboot", 0, 1)}
    assert [(c.key, c.new) for c in drift[101].changes] == [("cores", 2)]
    assert drift[102].start and all(i.resize_to == 3 for i in drift.values())
    apply.apply(api, changed, report=QUIET)
    assert node.lxc(100).config.get()["memory"] == 256
    assert node.lxc(101).config.get()["cores"] == 2
    assert node.lxc(102).status.current.get()["status"] == "running"
    assert all(node.lxc(v).config.get()["rootfs"].endswith("size=3G") for v in (100, 101, 102))
    assert not plan.make(api, changed).pending


def test_changes_needing_recreation_are_refused_then_done_with_recreate(prov: dict[str, Any]) -> None:
    loaded, api, node = prov["load"](), prov["api"], prov["node"]
    apply.apply(api, loaded, report=QUIET)
    before = node.lxc(100).config.get()
    wanted = prov["load"](extra={100: {"unprivileged": False}, 101: {"rootfs": "local:1"}})
    with pytest.raises(client.ProvisionError) as err:
        apply.apply(api, wanted, report=QUIET)
    assert (
        "nothing was changed" in str(err.value) and "unprivileged 1 -> 0" in str(err.value) and "rootfs shrink 2G -> 1G" in str(err.value)
    )
    assert node.lxc(100).config.get() == before
    outcome = apply.apply(api, wanted, recreate=True, report=QUIET)
    assert outcome.actions[100] == "recreate" and not outcome.errors
    assert node.lxc(100).config.get()["unprivileged"] == 0
    assert node.lxc(101).config.get()["rootfs"].endswith("size=1G")
    kinds = [t["type"] for t in node.tasks.get(limit=500) if t["id"] == "100"]
    assert kinds.index("vzdestroy") < kinds.index("vzsnapshot")  # newest first: the snapshot came before the destroy
    assert not plan.make(api, wanted).pending


def test_a_container_we_do_not_manage_is_never_touched(prov: dict[str, Any]) -> None:
    api, node, facts = prov["api"], prov["node"], prov["facts"]
    labkit.wait(node, node.lxc.post(vmid=101, ostemplate=facts["template"], hostname="someone-else", memory=128))
    loaded = prov["load"]()
    assert [i.action for i in plan.make(api, loaded).items] == ["create", "refuse", "create"]
    with pytest.raises(client.ProvisionError, match="vmid 101 exists and is not managed by QuantShift: refusing to touch it"):
        apply.apply(api, loaded, report=QUIET)
    assert [c["vmid"] for c in node.lxc.get()] == [101]  # nothing was created either
    with pytest.raises(client.ProvisionError, match="refusing to touch it"):
        apply.managed_existing(api, loaded)
    assert node.lxc(101).config.get()["memory"] == 128


def test_missing_template_and_bridge_are_reported_before_any_change(prov: dict[str, Any]) -> None:
    api, node = prov["api"], prov["node"]
    loaded = prov["load"](defaults={"template": "local:vztmpl/nowhere.tar.zst", "bridge": "vmbr9"})
    with pytest.raises(client.ProvisionError) as err:
        apply.apply(api, loaded, report=QUIET)
    assert "template local:vztmpl/nowhere.tar.zst is not on storage local" in str(err.value)
    assert "bridge 'vmbr9' does not exist" in str(err.value)
    assert node.lxc.get() == []


def test_snapshot_rollback_destroy_and_inventory(prov: dict[str, Any]) -> None:
    loaded, api, node = prov["load"](), prov["api"], prov["node"]
    apply.apply(api, loaded, report=QUIET)
    targets = apply.managed_existing(api, loaded)
    assert not apply.snapshot(api, loaded, targets, "before-release", QUIET)
    node.lxc(100).config.put(memory=300)
    with pytest.raises(client.ProvisionError, match="has no snapshot 'nope'"):
        apply.rollback(api, loaded, targets, "nope", QUIET)
    assert not apply.rollback(api, loaded, targets, "before-release", QUIET)
    assert node.lxc(100).config.get()["memory"] == 256
    assert node.lxc(100).status.current.get()["status"] == "running"

    inv = inventory.build(api, loaded)
    prefix = prov["facts"]["subnet"].rsplit(".", 1)[0]
    assert inv["primary"]["hosts"] == ["quantshift-primary"] and inv["bots"]["children"] == ["primary", "standby", "paper"]
    assert inv["_meta"]["hostvars"]["quantshift-paper"]["ansible_host"] == f"{prefix}.12"

    assert not apply.destroy(api, loaded, apply.managed_existing(api, loaded, {100}), QUIET)
    assert sorted(c["vmid"] for c in node.lxc.get()) == [101, 102]


def test_failed_task_is_reported_with_its_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = labkit.lab_settings(tmp_path, "10.231.13.0/24", "qsbrp0")
    with labkit.running_lab(lab, "memory", {"QUANTSHIFT_LAB_FAIL_VMIDS": "101"}) as facts:
        monkeypatch.setenv(client.TOKEN_ID_ENV, facts["token_id"])
        monkeypatch.setenv(client.TOKEN_SECRET_ENV, facts["token_secret"])
        path = tmp_path / "containers.yml"
        path.write_text(spec_text(facts))
        loaded = spec.load(path)
        api = client.connect(loaded.endpoint, client.credentials(loaded.endpoint))
        outcome = apply.apply(api, loaded, report=QUIET)
        assert set(outcome.errors) == {101}
        assert "No space left on device" in outcome.errors[101] and "TASK ERROR" in outcome.errors[101]
        assert sorted(c["vmid"] for c in api.nodes(facts["node"]).lxc.get()) == [100, 102]


def test_auth_and_reachability_errors(prov: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    loaded, facts = spec.load(prov["path"]), prov["facts"]
    api = prov["api"]
    made = api.access.users("root@pam").token("old").post(expire=1, privsep=0)
    monkeypatch.setenv(client.TOKEN_ID_ENV, "root@pam!old")
    monkeypatch.setenv(client.TOKEN_SECRET_ENV, made["value"])
    with pytest.raises(client.ProvisionError, match="token was refused"):
        client.connect(loaded.endpoint, client.credentials(loaded.endpoint))
    api.access.users("root@pam").token("old").delete()

    monkeypatch.setenv(client.TOKEN_ID_ENV, facts["readonly_token_id"])
    monkeypatch.setenv(client.TOKEN_SECRET_ENV, facts["readonly_token_secret"])
    ro = client.connect(loaded.endpoint, client.credentials(loaded.endpoint))
    outcome = apply.apply(ro, loaded, report=QUIET)
    assert set(outcome.errors) == {100, 101, 102} and "lacks a permission" in outcome.errors[100]

    closed = spec.Endpoint(
        host="127.0.0.1",
        port=labkit.free_port(),
        node="lab",
        ca_cert=Path(facts["ca_cert"]),
        credentials_file=None,
        timeout=2,
        task_timeout=5,
    )
    with pytest.raises(client.ProvisionError, match="cannot reach the Proxmox API"):
        client.connect(closed, client.credentials(loaded.endpoint))


def test_credentials_file_plain_and_vault(prov: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    facts = prov["facts"]
    monkeypatch.delenv(client.TOKEN_ID_ENV)
    monkeypatch.delenv(client.TOKEN_SECRET_ENV)
    creds = tmp_path / "creds.yml"
    creds.write_text(f"token_id: '{facts['token_id']}'\ntoken_secret: '{facts['token_secret']}'\n")
    creds.chmod(0o644)
    ep = spec.Endpoint("127.0.0.1", facts["port"], facts["node"], Path(facts["ca_cert"]), creds, 10, 60)
    with pytest.raises(client.ProvisionError, match="readable by others"):
        client.credentials(ep)
    creds.chmod(0o600)
    assert client.credentials(ep).token_id == facts["token_id"]
    assert facts["token_secret"] not in repr(client.credentials(ep))

    password = tmp_path / "vault-pass"
    password.write_text("lab-vault-password\n")
    vault = tmp_path / "creds.vault.yml"
    subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-vault"),
            "encrypt",
            "--vault-password-file",
            str(password),
            "--output",
            str(vault),
            str(creds),
        ],
        check=True,
        capture_output=True,
    )
    assert facts["token_secret"] not in vault.read_text()
    ep_vault = spec.Endpoint("127.0.0.1", facts["port"], facts["node"], Path(facts["ca_cert"]), vault, 10, 60)
    with pytest.raises(client.ProvisionError, match="ANSIBLE_VAULT_PASSWORD_FILE"):
        client.credentials(ep_vault, environ={})
    got = client.credentials(ep_vault, environ={"ANSIBLE_VAULT_PASSWORD_FILE": str(password)})
    assert got.secret == facts["token_secret"]


def test_cli_plan_exit_codes_and_destroy_confirmation(prov: dict[str, Any]) -> None:
    env = os.environ.copy()

    def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "quantshift", "provision", *args, "--spec", str(prov["path"])],
            env=env,
            capture_output=True,
            text=True,
            input=stdin,
            timeout=120,
            check=False,
        )

    pending = cli("plan")
    assert pending.returncode == 3 and "3 to create" in pending.stdout
    applied = cli("apply", "--json")
    assert applied.returncode == 0 and json.loads(applied.stdout)["changed"] is True
    assert cli("plan").returncode == 0
    refused = cli("destroy", stdin="")
    assert refused.returncode == 1 and "without --yes" in refused.stderr
    assert len(prov["node"].lxc.get()) == 3
    assert cli("destroy", "--yes").returncode == 0
    assert prov["node"].lxc.get() == []
    assert prov["facts"]["token_secret"] not in applied.stdout + applied.stderr


@pytest.mark.lxc
def test_lab_spec_end_to_end_on_lxc(lxc_lab: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped lab spec, pointed at this test's private lab, ends with SSH into all three containers."""
    facts = lxc_lab
    path = labkit.lab_spec_for(facts["settings"], tmp_path / "containers.yml")
    loaded = spec.load(path)
    api = client.connect(loaded.endpoint, client.credentials(loaded.endpoint))  # the token from credentials_file
    node = api.nodes(facts["node"])
    try:
        outcome = apply.apply(api, loaded, report=apply.Reporter(io.StringIO()))
        assert not outcome.errors and outcome.changed
        for ct in loaded.containers:
            labkit.wait_ssh(facts, str(ct.ip.ip))
            answer = labkit.ssh(facts, str(ct.ip.ip), "hostname; systemctl is-system-running --wait")
            assert answer.stdout.split() == [ct.hostname, "running"]
        assert not apply.apply(api, loaded, report=QUIET).changed
    finally:
        apply.destroy(api, loaded, apply.managed_existing(api, loaded), QUIET)
    assert node.lxc.get() == []
