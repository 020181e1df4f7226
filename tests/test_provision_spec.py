"""Every bad spec is refused with each problem at its line, before anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxmox import spec

GOOD = """\
endpoint:
  host: 127.0.0.1
  port: 8006
  node: lab
  ca_cert: ca.pem
defaults:
  template: local:vztmpl/debian.tar.zst
  bridge: qsbr0
  gateway: 10.231.7.1
containers:
  - vmid: 100
    hostname: quantshift-primary
    role: primary
    ip: 10.231.7.10/24
  - vmid: 101
    hostname: quantshift-standby
    role: standby
    ip: 10.231.7.11/24
    memory: 1024
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "containers.yml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(spec.SpecError) as err:
        spec.load(write(tmp_path, text))
    return err.value.problems


def test_good_spec_gets_defaults_and_overrides(tmp_path: Path) -> None:
    loaded = spec.load(write(tmp_path, GOOD))
    primary, standby = loaded.containers
    assert (primary.memory, standby.memory, primary.cores, primary.rootfs_gib) == (512, 1024, 1, 8)
    assert primary.net0 == "name=eth0,bridge=qsbr0,ip=10.231.7.10/24,gw=10.231.7.1"
    assert primary.all_tags == ["managed-by-quantshift", "qs-role-primary"]
    assert loaded.endpoint.ca_cert == tmp_path / "ca.pem"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("    memory: 1024\n", "    memory: 1024\n    colour: blue\n"), ":20:5: containers[1].colour: unknown key 'colour'"),
        (("    memory: 1024\n", "    memory: lots\n"), ":19:5: containers[1].memory: must be an integer, got str 'lots'"),
        (("  - vmid: 101\n", "  - vmid: 100\n"), ":15:5: containers[1].vmid: duplicate vmid 100"),
        (
            ("    hostname: quantshift-standby\n", "    hostname: quantshift-primary\n"),
            "containers[1].hostname: duplicate hostname quantshift-primary",
        ),
        (("    ip: 10.231.7.11/24\n", "    ip: 10.231.7.10/24\n"), "containers[1].ip: duplicate ip 10.231.7.10"),
        (("    ip: 10.231.7.11/24\n", "    ip: 10.231.8.11/24\n"), "gateway 10.231.7.1 is outside 10.231.8.11's subnet 10.231.8.0/24"),
        (("    ip: 10.231.7.11/24\n", "    ip: 10.231.7.11\n"), "containers[1].ip: '10.231.7.11' is not an IPv4 address with prefix"),
        (("  - vmid: 101\n", "  - vmid: 42\n"), ":15:5: containers[1].vmid: vmid 42 is out of range (100..999999999)"),
        (("    role: standby\n", "    role: backup\n"), "containers[1].role: role must be one of primary, standby, paper"),
        (
            ("  template: local:vztmpl/debian.tar.zst\n", "  template: debian.tar.zst\n"),
            "defaults.template: 'debian.tar.zst' is not a template volume id",
        ),
        (("  ca_cert: ca.pem\n", ""), "endpoint: 'ca_cert' is required (TLS is always verified"),
        (("    memory: 1024\n", "    memory: 1024\n    onboot: yes please\n"), "containers[1].onboot: must be true or false"),
        (
            ("    memory: 1024\n", "    memory: 1024\n    features: {nesting: 1, warp: 1}\n"),
            "containers[1].features.warp: unknown feature 'warp'",
        ),
        (("    memory: 1024\n", "    memory: 1024\n    rootfs: local:big\n"), "rootfs must be STORAGE:SIZE_IN_GIB"),
        (("    memory: 1024\n", "    memory: 1024\n    memory: 2048\n"), "key 'memory' appears twice"),
        (("    memory: 1024\n", "    memory: 1024\n    cores: true\n"), "containers[1].cores: must be an integer, got a boolean"),
    ],
)
def test_each_bad_spec_names_the_problem_and_its_line(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in GOOD
    found = problems(tmp_path, GOOD.replace(old, new, 1))
    assert any(expected in p for p in found), found


def test_all_problems_are_listed_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("  - vmid: 101\n", "  - vmid: 100\n").replace("    memory: 1024\n", "    memory: lots\n    colour: blue\n")
    found = problems(tmp_path, text)
    assert len(found) == 2 and all(p.startswith(str(tmp_path / "containers.yml") + ":") for p in found)
    # the duplicate is only reported for containers that are otherwise valid, so fix one and see the other
    assert "unknown key 'colour'" in found[0] and "must be an integer" in found[1]


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    assert "not valid YAML" in problems(tmp_path, "endpoint: [\n")[0]
    assert "must be a mapping" in problems(tmp_path, "- 1\n- 2\n")[0]
    assert "'containers' is required" in " ".join(problems(tmp_path, GOOD.split("containers:")[0]))


def test_shipped_specs_are_valid(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    for name in ("lab", "production"):
        text = (root / "inventory" / name / "containers.yml").read_text()
        # the key files live on the lab host / the operator's machine: point them at a local stand-in
        key = tmp_path / "key.pub"
        key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIda1Km5qOYg5kB9VMAy+CADReG9vzJpeb+MuphlUseW test\n")
        text = text.replace("/var/lib/quantshift-lab/ssh/id_ed25519.pub", str(key)).replace("[ops-keys.pub]", f"[{key}]")
        loaded = spec.load(write(tmp_path, text))
        assert [(c.vmid, c.role) for c in loaded.containers] == [(100, "primary"), (101, "standby"), (102, "paper")]
