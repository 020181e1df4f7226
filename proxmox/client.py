"""A verified, token-authenticated proxmoxer client, with errors an operator can act on."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml
from proxmoxer import ProxmoxAPI
from proxmoxer.core import ResourceException

from proxmox.spec import Endpoint
from quantshift_bot.errors import UserError

TOKEN_ID_ENV = "QUANTSHIFT_PVE_TOKEN_ID"
TOKEN_SECRET_ENV = "QUANTSHIFT_PVE_TOKEN_SECRET"


class ProvisionError(UserError, RuntimeError):
    """Provisioning cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Credentials:
    token_id: str  # user@realm!name
    secret: str

    def __repr__(self) -> str:  # never print the secret, even in a traceback
        return f"Credentials(token_id={self.token_id!r}, secret=<hidden>)"

    @property
    def user(self) -> str:
        return self.token_id.split("!", 1)[0]

    @property
    def name(self) -> str:
        return self.token_id.split("!", 1)[1]


def credentials(endpoint: Endpoint, environ: dict[str, str] | None = None) -> Credentials:
    """The API token from QUANTSHIFT_PVE_TOKEN_ID/SECRET, else from the endpoint's credentials file.

    The file is YAML with `token_id` and `token_secret`, plain (mode 0600) or encrypted with Ansible
    Vault (the vault password from ANSIBLE_VAULT_PASSWORD_FILE). A password is never accepted.
    """
    env = os.environ if environ is None else environ
    if env.get(TOKEN_ID_ENV) and env.get(TOKEN_SECRET_ENV):
        return _checked(env[TOKEN_ID_ENV], env[TOKEN_SECRET_ENV], f"${TOKEN_ID_ENV}")
    path = endpoint.credentials_file
    if path is None:
        raise ProvisionError(f"no API token: set {TOKEN_ID_ENV} and {TOKEN_SECRET_ENV}, or endpoint.credentials_file in the spec")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ProvisionError(f"cannot read the credentials file {path}: {err.strerror}") from None
    if raw.startswith(b"$ANSIBLE_VAULT"):
        raw = _vault_decrypt(raw, path, env)
    elif stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise ProvisionError(
            f"{path} holds a plain-text token and is readable by others: chmod 600 {path} (or encrypt it with ansible-vault)"
        )
    data = yaml.safe_load(raw)
    if not isinstance(data, dict) or not {"token_id", "token_secret"} <= set(data):
        raise ProvisionError(f"{path} must hold `token_id: user@realm!name` and `token_secret: ...`")
    return _checked(str(data["token_id"]), str(data["token_secret"]), str(path))


def _checked(token_id: str, secret: str, source: str) -> Credentials:
    if "!" not in token_id or "@" not in token_id.split("!")[0]:
        raise ProvisionError(f"token id from {source} must look like user@realm!tokenname, got {token_id!r}")
    return Credentials(token_id, secret.strip())


def _vault_decrypt(raw: bytes, path: Path, env: Any) -> bytes:
    password_file = env.get("ANSIBLE_VAULT_PASSWORD_FILE")
    if not password_file:
        raise ProvisionError(f"{path} is vault-encrypted: set ANSIBLE_VAULT_PASSWORD_FILE")
    try:
        from ansible.constants import DEFAULT_VAULT_ID_MATCH
        from ansible.parsing.vault import VaultLib, VaultSecret
    except ImportError:
        raise ProvisionError("decrypting a vault file needs ansible-core: run `make setup`") from None
    secret = VaultSecret(Path(password_file).read_bytes().strip())
    try:
        plain: bytes = VaultLib([(DEFAULT_VAULT_ID_MATCH, secret)]).decrypt(raw)
    except Exception as err:
        raise ProvisionError(f"cannot decrypt {path}: {err}") from None
    return plain


def connect(endpoint: Endpoint, creds: Credentials) -> Any:
    """A proxmoxer client; raises ProvisionError when the API is unreachable or refuses the token."""
    if not endpoint.ca_cert.exists():
        raise ProvisionError(f"CA certificate {endpoint.ca_cert} not found (endpoint.ca_cert): TLS is always verified")
    api = ProxmoxAPI(
        endpoint.host,
        port=endpoint.port,
        user=creds.user,
        token_name=creds.name,
        token_value=creds.secret,
        verify_ssl=str(endpoint.ca_cert),
        timeout=endpoint.timeout,
    )
    call(lambda: api.version.get(), endpoint, "checking the API")
    return api


def call(fn: Any, endpoint: Endpoint, what: str) -> Any:
    """Run one API call, turning transport and auth failures into a ProvisionError."""
    try:
        return fn()
    except requests.exceptions.SSLError as err:
        raise ProvisionError(
            f"{what}: TLS verification of {endpoint.url} failed against {endpoint.ca_cert}: {err.__class__.__name__}"
        ) from None
    except requests.exceptions.ConnectionError:
        raise ProvisionError(
            f"{what}: cannot reach the Proxmox API at {endpoint.url} (is it up? `quantshift lab status` for the lab)"
        ) from None
    except requests.exceptions.Timeout:
        raise ProvisionError(f"{what}: the Proxmox API at {endpoint.url} did not answer within {endpoint.timeout}s") from None
    except ResourceException as err:
        if err.status_code == 401:
            raise ProvisionError(f"{what}: the API token was refused ({err.content.strip()}): check it is valid and not expired") from None
        if err.status_code == 403:
            raise ProvisionError(
                f"{what}: the API token lacks a permission ({err.content.strip()}): grant VM.Allocate, VM.Config.*, VM.PowerMgmt, VM.Snapshot, Datastore.AllocateSpace"
            ) from None
        raise
