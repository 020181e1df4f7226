"""Proxmox VE parameter checking for LXC containers: types, ranges and property strings.

Errors come back as one `{param: message}` map, answered as HTTP 400 the way Proxmox does.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from lab.httpd import ApiError

Value = int | float | str
MAX_VMID = 999_999_999
_DNS = re.compile(r"^(?=.{1,255}$)(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?\.)*[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$")
_TAG = re.compile(r"^[a-z0-9_][a-z0-9_\-+.]*$", re.IGNORECASE)
_MAC = re.compile(r"^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$", re.IGNORECASE)
_SSH_KEY = re.compile(r"^(?:ssh-(?:rsa|ed25519|dss)|ecdsa-sha2-nistp\d+|sk-\S+)\s+[A-Za-z0-9+/=]+(?:\s.*)?$")
_VOLID = re.compile(r"^(?P<storage>[a-z][a-z0-9\-_.]*):(?P<volume>.+)$", re.IGNORECASE)
_SIZE = re.compile(r"^(?P<num>\d+(?:\.\d+)?)(?P<unit>[KMGT]?)$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(raw: str) -> int:
    low = raw.strip().lower()
    if low in _TRUE:
        return 1
    if low in _FALSE:
        return 0
    raise ValueError(f"type check ('boolean') failed - got '{raw}'")


def _int(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], Value]:
    def parse(raw: str) -> Value:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"type check ('integer') failed - got '{raw}'") from None
        if minimum is not None and value < minimum:
            raise ValueError(f"value must have a minimum value of {minimum}")
        if maximum is not None and value > maximum:
            raise ValueError(f"value must have a maximum value of {maximum}")
        return value

    return parse


def _number(minimum: float, maximum: float) -> Callable[[str], Value]:
    def parse(raw: str) -> Value:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"type check ('number') failed - got '{raw}'") from None
        if not minimum <= value <= maximum:
            raise ValueError(f"value must be between {minimum} and {maximum}")
        return int(value) if value.is_integer() else value

    return parse


def _enum(*choices: str) -> Callable[[str], Value]:
    def parse(raw: str) -> Value:
        if raw not in choices:
            raise ValueError(f"value '{raw}' does not have a value in the enumeration '{', '.join(choices)}'")
        return raw

    return parse


def _string(max_len: int = 8192, pattern: re.Pattern[str] | None = None, what: str = "") -> Callable[[str], Value]:
    def parse(raw: str) -> Value:
        if len(raw) > max_len:
            raise ValueError(f"value may only be {max_len} characters long")
        if pattern is not None and not pattern.match(raw):
            raise ValueError(f"value does not match the regex pattern ({what})" if what else "invalid format")
        return raw

    return parse


def _ipv4_cidr_or(*words: str) -> Callable[[str], Value]:
    def parse(raw: str) -> Value:
        if raw in words:
            return raw
        try:
            iface = ipaddress.IPv4Interface(raw)
        except ValueError:
            raise ValueError("value does not look like a valid ipv4 network configuration") from None
        if "/" not in raw:
            raise ValueError("value does not look like a valid ipv4 network configuration (CIDR prefix missing)")
        return str(iface)

    return parse


def _ipv4(raw: str) -> Value:
    try:
        return str(ipaddress.IPv4Address(raw))
    except ValueError:
        raise ValueError(f"value '{raw}' does not look like a valid IPv4 address") from None


def parse_size(raw: str, default_unit: str = "G") -> float:
    """A disk size such as `8G` or `512M` (a bare number is in `default_unit`), in GiB."""
    match = _SIZE.match(raw.strip())
    if not match:
        raise ValueError(f"invalid size '{raw}'")
    unit = match["unit"] or default_unit
    return float(match["num"]) * {"B": 1 / 1024**3, "K": 1 / 1024**2, "M": 1 / 1024, "G": 1.0, "T": 1024.0}[unit]


def format_size(gib: float) -> str:
    return f"{int(gib)}G" if float(gib).is_integer() else f"{int(gib * 1024)}M"


@dataclass(frozen=True)
class PropertyString:
    """A Proxmox property string (`key=value,key=value`), with an optional key for a leading bare value."""

    keys: Mapping[str, Callable[[str], Value]]
    default_key: str | None = None
    required: tuple[str, ...] = ()

    def __call__(self, raw: str) -> Value:
        self.parse(raw)
        return raw

    def parse(self, raw: str) -> dict[str, Value]:
        out: dict[str, Value] = {}
        for part in filter(None, (p.strip() for p in raw.split(","))):
            key, sep, value = part.partition("=")
            if not sep:
                if self.default_key is None or self.default_key in out:
                    raise ValueError(f"invalid format - missing key in '{part}'")
                key, value = self.default_key, part
            if key not in self.keys:
                raise ValueError(f"invalid format - unknown key '{key}'")
            if key in out:
                raise ValueError(f"invalid format - duplicate key '{key}'")
            try:
                out[key] = self.keys[key](value)
            except ValueError as err:
                raise ValueError(f"invalid format - {key}: {err}") from None
        for key in self.required:
            if key not in out:
                raise ValueError(f"invalid format - {key}: property is missing and it is not optional")
        return out

    @staticmethod
    def format(values: Mapping[str, Value], first: str | None = None) -> str:
        parts = [str(values[first])] if first and first in values else []
        parts += [f"{k}={v}" for k, v in values.items() if k != first]
        return ",".join(parts)


def _volume(raw: str) -> Value:
    if not _VOLID.match(raw):
        raise ValueError(f"unable to parse volume ID '{raw}'")
    return raw


def _size(raw: str) -> Value:
    parse_size(raw, default_unit="B")
    return raw


NET = PropertyString(
    {
        "name": _string(16, re.compile(r"^[a-zA-Z0-9_.-]+$"), "interface name"),
        "bridge": _string(16, re.compile(r"^[a-zA-Z0-9_.-]+$"), "bridge name"),
        "ip": _ipv4_cidr_or("dhcp", "manual"),
        "gw": _ipv4,
        "ip6": _string(64),
        "gw6": _string(64),
        "hwaddr": _string(17, _MAC, "MAC address"),
        "firewall": parse_bool,
        "link_down": parse_bool,
        "mtu": _int(64, 65535),
        "rate": _number(0, 1e9),
        "tag": _int(1, 4094),
        "type": _enum("veth"),
    },
    required=("name",),
)
ROOTFS = PropertyString(
    {
        "volume": _volume,
        "size": _size,
        "acl": parse_bool,
        "backup": parse_bool,
        "mountoptions": _string(256),
        "quota": parse_bool,
        "replicate": parse_bool,
        "ro": parse_bool,
        "shared": parse_bool,
    },
    default_key="volume",
    required=("volume",),
)
FEATURES = PropertyString(dict.fromkeys(("nesting", "keyctl", "fuse", "mknod", "force_rw_sys"), parse_bool) | {"mount": _string(256)})
STARTUP = PropertyString({"order": _int(0), "up": _int(0), "down": _int(0)}, default_key="order")


def _tags(raw: str) -> Value:
    tags = [t for t in re.split(r"[;, ]+", raw.strip()) if t]
    for tag in tags:
        if not _TAG.match(tag):
            raise ValueError(f"invalid format - tag '{tag}' does not match {_TAG.pattern}")
    return ";".join(tags)


def _ssh_keys(raw: str) -> Value:
    for line in raw.splitlines():
        if line.strip() and not line.lstrip().startswith("#") and not _SSH_KEY.match(line.strip()):
            raise ValueError("invalid format - not an SSH public key")
    return raw


@dataclass(frozen=True)
class Param:
    parse: Callable[[str], Value]
    create_only: bool = False  # may be given on create but never changed with PUT /config
    stored: bool = True  # part of the container's config (password, start... are not)


CONTAINER_PARAMS: dict[str, Param] = {
    "vmid": Param(_int(100, MAX_VMID), create_only=True, stored=False),
    "ostemplate": Param(_volume, create_only=True, stored=False),
    "password": Param(_string(256), create_only=True, stored=False),
    "ssh-public-keys": Param(_ssh_keys, create_only=True, stored=False),
    "storage": Param(_string(64), create_only=True, stored=False),
    "start": Param(parse_bool, create_only=True, stored=False),
    "unique": Param(parse_bool, create_only=True, stored=False),
    "restore": Param(parse_bool, create_only=True, stored=False),
    "force": Param(parse_bool, create_only=True, stored=False),
    "pool": Param(_string(64), create_only=True, stored=False),
    "ignore-unpack-errors": Param(parse_bool, create_only=True, stored=False),
    "unprivileged": Param(parse_bool, create_only=True),
    "hostname": Param(_string(255, _DNS, "dns name")),
    "arch": Param(_enum("amd64", "i386", "arm64", "armhf", "riscv32", "riscv64")),
    "ostype": Param(
        _enum("debian", "devuan", "ubuntu", "centos", "fedora", "opensuse", "archlinux", "alpine", "gentoo", "nixos", "unmanaged")
    ),
    "cores": Param(_int(1, 8192)),
    "cpulimit": Param(_number(0, 8192)),
    "cpuunits": Param(_int(0, 500000)),
    "memory": Param(_int(16)),
    "swap": Param(_int(0)),
    "rootfs": Param(ROOTFS),
    "features": Param(FEATURES),
    "onboot": Param(parse_bool),
    "protection": Param(parse_bool),
    "template": Param(parse_bool),
    "console": Param(parse_bool),
    "tty": Param(_int(0, 6)),
    "cmode": Param(_enum("shell", "console", "tty")),
    "startup": Param(STARTUP),
    "tags": Param(_tags),
    "description": Param(_string(8192)),
    "nameserver": Param(_string(256)),
    "searchdomain": Param(_string(256)),
    "timezone": Param(_string(64)),
    "hookscript": Param(_volume),
    "debug": Param(parse_bool),
} | {f"net{i}": Param(NET) for i in range(10)}

UNKNOWN = "property is not defined in schema and the schema does not allow additional properties"
MISSING = "property is missing and it is not optional"


@dataclass
class Checked:
    values: dict[str, Value] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def raise_if_errors(self) -> None:
        if self.errors:
            raise ApiError(400, "Parameter verification failed.", self.errors)


def check(params: Mapping[str, str], schema: Mapping[str, Param | Callable[[str], Value]], required: tuple[str, ...] = ()) -> Checked:
    """Check every parameter against `schema`; collect all problems rather than stopping at the first."""
    out = Checked()
    for key in required:
        if key not in params:
            out.errors[key] = MISSING
    for key, raw in params.items():
        spec = schema.get(key)
        if spec is None:
            out.errors[key] = UNKNOWN
            continue
        parse = spec.parse if isinstance(spec, Param) else spec
        try:
            out.values[key] = parse(raw)
        except ValueError as err:
            out.errors[key] = str(err)
    return out
