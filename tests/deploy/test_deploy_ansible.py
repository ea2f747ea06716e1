"""The servefit.infra collection checked by Ansible's own tools.

* ``ansible-lint --offline`` with the production profile;
* ``ansible-playbook --syntax-check`` of the playbook by its collection name;
* a ``--check`` run of the playbook against localhost. NVIDIA's key server is replaced by a local
  HTTP server on 127.0.0.1 serving a throw-away OpenPGP key made with gpg, whose fingerprint is
  passed in: the run fetches the key, checks its fingerprint and would add the repository. A
  second run with a fingerprint that does not match must refuse the key.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_helpers import REPO

COLLECTION = REPO / "ansible_collections" / "servefit" / "infra"
PLAYBOOK = "servefit.infra.nvidia_container_toolkit"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            pytest.skip(f"{name} is not installed")
        return found
    return str(path)


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(REPO),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"),
        ANSIBLE_REMOTE_TEMP=str(tmp_path / "ansible-remote"),
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_STDOUT_CALLBACK="default",
        ANSIBLE_RETRY_FILES_ENABLED="0",
        ANSIBLE_PIPELINING="1",
        PY_COLORS="0",
        NO_COLOR="1",
    )
    return env


def test_ansible_lint_production_profile(tmp_path: Path) -> None:
    proc = subprocess.run(
        [_tool("ansible-lint"), "--offline", "--profile", "production", "--nocolor"],
        cwd=COLLECTION,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Profile 'production' was required, and it passed" in output
    assert "0 failure(s), 0 warning(s)" in output


def test_playbook_syntax_check(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            _tool("ansible-playbook"),
            "-i",
            "localhost,",
            "--syntax-check",
            PLAYBOOK,
            "-e",
            "servefit_gpu_hosts=localhost",
        ],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "nvidia_container_toolkit.yml" in proc.stdout


def _system_python_with_apt() -> str:
    for candidate in ("/usr/bin/python3",):
        if Path(candidate).exists():
            probe = subprocess.run([candidate, "-c", "import apt_pkg"], capture_output=True, timeout=30)
            if probe.returncode == 0:
                return candidate
    pytest.skip("no system Python with python3-apt for Ansible's apt module")


@pytest.fixture(scope="module")
def key_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(URL, fingerprint) of a fresh OpenPGP public key served on 127.0.0.1."""
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed")
    from httpserver import FakeServer, serve

    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    env = dict(os.environ, GNUPGHOME=str(home))
    subprocess.run(
        [
            "gpg",
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "servefit test <test@example.invalid>",
            "ed25519",
            "sign",
            "1d",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    key = subprocess.run(["gpg", "--armor", "--export"], env=env, check=True, capture_output=True, timeout=30).stdout
    colons = subprocess.run(
        ["gpg", "--with-colons", "--list-keys"], env=env, check=True, capture_output=True, text=True, timeout=30
    ).stdout
    fingerprint = next(line.split(":")[9] for line in colons.splitlines() if line.startswith("fpr:"))
    with serve(FakeServer(files={"/gpgkey": key})) as server:
        yield f"{server.base_url}/gpgkey", fingerprint
    subprocess.run(["gpgconf", "--kill", "all"], env=env, capture_output=True, timeout=30)


def _check_run(tmp_path: Path, key_url: str, fingerprint: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            _tool("ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "--check",
            PLAYBOOK,
            "-e",
            "servefit_gpu_hosts=localhost",
            "-e",
            f"ansible_python_interpreter={_system_python_with_apt()}",
            "-e",
            "nvidia_container_toolkit_require_driver=false",
            "-e",
            "nvidia_container_toolkit_runtime=containerd",
            "-e",
            f"nvidia_container_toolkit_gpg_key_url={key_url}",
            "-e",
            f"nvidia_container_toolkit_gpg_fingerprint={fingerprint}",
            "-e",
            "nvidia_container_toolkit_repo_base=http://127.0.0.1:9/unused",
        ],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_check_run_against_localhost(tmp_path: Path, key_server: tuple[str, str]) -> None:
    key_url, fingerprint = key_server
    before = set(Path("/etc/apt/sources.list.d").glob("*")) if Path("/etc/apt/sources.list.d").exists() else set()
    proc = _check_run(tmp_path, key_url, fingerprint)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "failed=0" in output
    assert "Refuse a key whose fingerprint is not NVIDIA's" in output
    assert "Add NVIDIA's container toolkit repository, signed by that key only" in output
    # check mode changes nothing on the host
    after = set(Path("/etc/apt/sources.list.d").glob("*")) if Path("/etc/apt/sources.list.d").exists() else set()
    assert after == before
    assert not Path("/etc/apt/sources.list.d/nvidia-container-toolkit.sources").exists()


@pytest.mark.slow
def test_check_run_refuses_a_key_with_another_fingerprint(tmp_path: Path, key_server: tuple[str, str]) -> None:
    key_url, _ = key_server
    proc = _check_run(tmp_path, key_url, "C95B321B61E88C1809C4F759DDCAE044F796ECB0")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "the repository was not added" in output
