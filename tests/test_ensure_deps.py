"""tools/ensure_deps.py, run as `make test` runs it, against fake dpkg-query, apt-get,
sudo and systemctl on PATH: it reports or installs exactly the missing packages, asks
apt nothing when all are present, and stops with the command to run when it cannot."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "ensure_deps.py"
sys.path.insert(0, str(ROOT))

from tools import ensure_deps  # noqa: E402

# dpkg-query -W -f=... PKG...: "PKG ii " for each installed one, like the real one; the
# installed set is the file $FAKE/installed (one name a line).
DPKG_QUERY = """#!/bin/sh
shift 2
rc=0
for p in "$@"; do
  if grep -qx "$p" "$FAKE/installed"; then echo "$p ii "; else
    echo "dpkg-query: no packages found matching $p" >&2; rc=1; fi
done
exit $rc
"""

# apt-get: logs its arguments; `install` adds the packages to the installed set.
APT_GET = """#!/bin/sh
echo "apt-get $*" >> "$FAKE/log"
if [ "$1" = install ]; then
  for p in "$@"; do case "$p" in -*|install) ;; *) echo "$p" >> "$FAKE/installed";; esac; done
fi
"""

SYSTEMCTL = """#!/bin/sh
echo "systemctl $*" >> "$FAKE/log"
"""

# sudo -n CMD...: works when $FAKE/sudo_ok exists (runs CMD), fails like a password prompt.
SUDO = """#!/bin/sh
[ -e "$FAKE/sudo_ok" ] || exit 1
shift
echo "sudo $*" >> "$FAKE/log"
[ "$1" = true ] && exit 0
exec env "$@"
"""


def fake_bin(tmp_path, installed):
    d = tmp_path / "bin"
    d.mkdir()
    for name, text in (
        ("dpkg-query", DPKG_QUERY),
        ("apt-get", APT_GET),
        ("systemctl", SYSTEMCTL),
        ("sudo", SUDO),
    ):
        (d / name).write_text(text)
        (d / name).chmod(0o755)
    (tmp_path / "installed").write_text("".join(p + "\n" for p in installed))
    (tmp_path / "log").write_text("")
    return d


def run(tmp_path, *args, euid=None):
    env = dict(os.environ, FAKE=str(tmp_path))
    env["PATH"] = "%s:%s" % (tmp_path / "bin", env["PATH"])
    env.pop("ENSURE_DEPS_EUID", None)
    if euid is not None:
        env["ENSURE_DEPS_EUID"] = str(euid)
    p = subprocess.run(
        [sys.executable, str(SCRIPT)] + list(args),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return p.returncode, p.stdout + p.stderr, (tmp_path / "log").read_text()


def test_dry_run_names_exactly_the_missing_packages(tmp_path):
    wanted = ensure_deps.wanted("test")
    fake_bin(tmp_path, [p for p in wanted if p not in ("socat", "softhsm2")])
    rc, out, log = run(tmp_path, "test", "--dry-run", euid=0)
    assert rc == 0, out
    assert "missing Debian packages for `make test`: socat softhsm2\n" in out
    assert (
        "would run (as root): apt-get update && "
        "apt-get install -y --no-install-recommends socat softhsm2" in out
    )
    assert log == ""  # a dry run calls no apt


def test_everything_present_calls_no_apt_and_prints_nothing(tmp_path):
    fake_bin(tmp_path, ensure_deps.wanted("test"))
    rc, out, log = run(tmp_path, "test", euid=0)
    assert (rc, out, log) == (0, "", "")


def test_as_root_it_installs_the_missing_ones_and_stops_the_packaged_broker(tmp_path):
    wanted = ensure_deps.wanted("test")
    fake_bin(tmp_path, [p for p in wanted if p not in ("mosquitto", "valgrind")])
    rc, out, log = run(tmp_path, "test", euid=0)
    assert rc == 0, out
    assert log.splitlines() == [
        "apt-get update",
        "apt-get install -y --no-install-recommends mosquitto valgrind",
        "systemctl stop mosquitto",
    ]
    # and the next run finds everything: no apt at all
    (tmp_path / "log").write_text("")
    assert run(tmp_path, "test", euid=0) == (0, "", "")


def test_without_root_it_uses_sudo_when_sudo_needs_no_password(tmp_path):
    fake_bin(tmp_path, [p for p in ensure_deps.wanted("test") if p != "socat"])
    (tmp_path / "sudo_ok").write_text("")
    rc, out, log = run(tmp_path, "test", euid=1000)
    assert rc == 0, out
    assert "apt-get install -y --no-install-recommends socat" in log
    assert log.splitlines()[0] == "sudo true"  # the probe
    assert "sudo DEBIAN_FRONTEND=noninteractive apt-get update" in log


def test_without_root_or_sudo_it_stops_at_once_with_the_command(tmp_path):
    fake_bin(tmp_path, [p for p in ensure_deps.wanted("test") if p != "chromium-driver"])
    rc, out, log = run(tmp_path, "test", euid=1000)
    assert rc == 2, out
    assert (
        "  sudo apt-get update && sudo apt-get install -y --no-install-recommends "
        "chromium-driver\n" in out
    )
    assert "apt-get" not in log  # nothing was attempted


def test_python3_venv_is_wanted_only_while_there_is_no_venv(monkeypatch):
    monkeypatch.setattr(ensure_deps, "_venv_exists", lambda: False)
    assert ensure_deps.wanted("demo") == ["python3-venv"]
    assert "python3-venv" in ensure_deps.wanted("test")
    monkeypatch.setattr(ensure_deps, "_venv_exists", lambda: True)
    assert ensure_deps.wanted("demo") == []
    assert "python3-venv" not in ensure_deps.wanted("test")
    assert "mosquitto" in ensure_deps.wanted("test")


def test_an_unknown_profile_is_a_usage_error(tmp_path):
    fake_bin(tmp_path, [])
    rc, out, _ = run(tmp_path, "everything")
    assert rc == 64 and "usage" in out


def test_make_test_and_make_demo_check_the_packages_first():
    for target, profile in (("test", "test"), ("demo", "demo"), ("bench", "venv")):
        p = subprocess.run(
            ["make", "-n", target], cwd=str(ROOT), capture_output=True, text=True, timeout=60
        )
        assert p.returncode == 0, p.stderr
        # under `make test` itself, make -n also prints "make[1]: Entering directory" lines
        lines = [x for x in p.stdout.splitlines() if not x.startswith("make[")]
        assert lines[0].endswith("tools/ensure_deps.py " + profile), lines
        assert sum("ensure_deps.py" in x for x in lines) == 1, lines  # once per make run


def test_ci_run_is_make_test():
    text = (ROOT / ".ci" / "run").read_text()
    commands = [x for x in text.splitlines() if x.strip() and not x.startswith("#")]
    assert commands[-1] == "exec make test", commands
    assert not any("apt-get" in x for x in commands), commands
