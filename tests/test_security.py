"""Security checks over the repository and the secret scanner itself.

- TLS verification is never switched off: no argument, option or SSL setting that disables
  certificate or host name checks (TLS_OFF below) anywhere in the project's files, except in the
  bad-input corpus, which proves such a spec is refused (tests/test_bad_input.py). The lab has its
  own CA and every client is given it.
- The secret scanner finds a planted secret (so a clean scan means something) and names the file
  and the secret, never the value. The e2e pipeline test runs it over every playbook output, the
  audit log and the containers' journals; `make demo` over its logs.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from lab import secretscan
from tests import ROOT

TLS_OFF = re.compile(
    r"verify(_ssl)?\s*=\s*False|validate_certs\s*[:=]\s*(false|no|False)|CERT_NONE|check_hostname\s*=\s*False|verify_ssl:\s*false"
)
ALLOWED = {"tests/test_security.py", "tests/corpus/specs.yml"}


def project_files() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return [f for f in out if (ROOT / f).is_file()]


def test_tls_verification_is_never_switched_off() -> None:
    offenders = []
    for name in project_files():
        text = (ROOT / name).read_bytes().decode("utf-8", "replace")
        for n, line in enumerate(text.splitlines(), 1):
            if TLS_OFF.search(line) and name not in ALLOWED:
                offenders.append(f"{name}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
    assert any(TLS_OFF.search(line) for line in (ROOT / "tests/corpus/specs.yml").read_text().splitlines())  # the refused case exists


def test_secret_scanner_finds_a_planted_secret_and_never_prints_it(tmp_path: Path) -> None:
    facts = {
        "token_secret": "0123456789abcdef-token",
        "password": "short",  # too short to be told from ordinary text: not scanned
        "alpaca": {"live": {"key_id": "LABLIVE", "secret_key": "s3cr3t-alpaca-live-key-value"}},
        "coinbase": {
            "live": {
                "private_key": "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"
            }
        },
        "redis_url": "redis://quantshift:redis-password-value-123@127.0.0.1:6390/0",
    }
    secrets = secretscan.secrets_of(facts)
    assert set(secrets) == {"token_secret", "alpaca live secret_key", "coinbase live private key line 1", "redis password"}
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "clean.log").write_text("ok: [host] => (item=equity)\n")
    count, _, found = secretscan.scan([tmp_path], secrets)
    assert count == 1 and found == []
    (tmp_path / "logs" / "leaky.log").write_text(
        "QS_REDIS_URL=redis://quantshift:redis-password-value-123@10.0.0.1\\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg"
    )
    count, _, found = secretscan.scan([tmp_path], secrets)
    leaky = str(tmp_path / "logs" / "leaky.log")
    assert count == 2 and sorted(found) == [(leaky, "coinbase live private key line 1"), (leaky, "redis password")]
    assert all("redis-password-value" not in name for _, name in found)
