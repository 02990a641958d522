"""Installs the Debian packages a make target needs, when they are missing.

    python3 tools/ensure_deps.py test          # before `make test` (the Makefile calls it)
    python3 tools/ensure_deps.py demo          # before `make demo`
    python3 tools/ensure_deps.py venv          # only what creating .venv needs
    python3 tools/ensure_deps.py test --dry-run   # print what would be installed, change nothing

One `dpkg-query` call checks every package, so with everything present this costs a few
milliseconds and never calls apt. Missing packages are installed with `apt-get update` then
`apt-get install -y --no-install-recommends ...`: directly as root, else through `sudo -n`
when sudo works without a password; otherwise the script stops at once (exit status 2) and
prints the exact command to run. Nothing is skipped for want of a package.

Installing mosquitto starts its packaged service on port 1883; the tests start their own
brokers on free loopback ports, so that service is stopped right after the install (a
service the user already ran before is left alone).

Runs on the system `python3` (3.9+, standard library only): it has to work before .venv
exists. ENSURE_DEPS_EUID (tests only) pretends to be that user id.
"""

import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What creating .venv needs on Debian: `python3 -m venv` fails without ensurepip's wheels.
VENV = ("python3-venv",)

# What the tests need (the reason, for the message): every one of them is used by a test.
TEST = VENV + (
    "openssl",  # tests/test_tls_hsm.py, test_firmware.py: the openssl command line
    "mosquitto",  # tests/brokers.py: a real broker on loopback
    "socat",  # tools/simboard.py (tests/test_deploy.py): a pty board for mpremote
    "chromium",  # tests/test_dashboard_browser.py: the dashboard in a headless browser
    "chromium-driver",
    "softhsm2",  # tests/test_tls_hsm.py: a key in a PKCS#11 token
    "libengine-pkcs11-openssl",
    "opensc",  # pkcs11-tool, to put the key in the token
    "gnutls-bin",  # in .ci/run's list since the start; no test calls it today
    "valgrind",  # tests/test_bench_smoke.py: mbedTLS heap figure under massif
)

PROFILES = {"venv": VENV, "demo": VENV, "test": TEST}


class DepsError(Exception):
    pass


def _venv_exists():
    return os.path.exists(os.path.join(ROOT, ".venv", "bin", "python"))


def wanted(profile):
    pkgs = list(PROFILES[profile])
    if _venv_exists():
        # Only creating the venv needs python3-venv; an existing one is not rebuilt with it.
        pkgs = [p for p in pkgs if p not in VENV]
    return pkgs


def missing(pkgs):
    """The packages dpkg does not list as installed ("ii"), in the order given."""
    if not pkgs:
        return []
    if shutil.which("dpkg-query") is None:
        raise DepsError(
            "dpkg-query not found: this is not a Debian system. Install these packages "
            "with your package manager, then run make again:\n  " + " ".join(pkgs)
        )
    proc = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\n"] + list(pkgs),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # "no packages found matching X": X is simply missing
        text=True,
    )
    ok = set()
    for line in proc.stdout.splitlines():
        words = line.split()
        if len(words) >= 2 and words[1].startswith("ii"):
            ok.add(words[0].split(":")[0])  # multi-arch names come back as name:arch
    return [p for p in pkgs if p not in ok]


def _euid():
    fake = os.environ.get("ENSURE_DEPS_EUID")
    return int(fake) if fake else os.geteuid()


def _sudo_works():
    if shutil.which("sudo") is None:
        return False
    try:
        r = subprocess.run(
            ["sudo", "-n", "true"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def commands(pkgs, prefix):
    install = ["apt-get", "install", "-y", "--no-install-recommends"] + list(pkgs)
    return [prefix + ["apt-get", "update"], prefix + install]


def _shell(cmds):
    return " && ".join(" ".join(c) for c in cmds)


def plan(profile):
    """(missing packages, how: "root" | "sudo" | None, the commands to run)."""
    need = missing(wanted(profile))
    if not need:
        return need, "root", []
    if _euid() == 0:
        return need, "root", commands(need, [])
    if _sudo_works():
        return need, "sudo", commands(need, ["sudo", "-n"])
    return need, None, commands(need, ["sudo"])


def ensure(profile, dry_run=False, out=print):
    need, how, cmds = plan(profile)
    if not need:
        return 0
    out("ensure_deps: missing Debian packages for `make %s`: %s" % (profile, " ".join(need)))
    if how is None:
        out("ensure_deps: not root and `sudo -n` is not available. Run this, then make again:")
        out("  " + _shell(cmds))
        return 2
    if dry_run:
        out("ensure_deps: would run (as %s): %s" % (how, _shell(cmds)))
        return 0
    if shutil.which("apt-get") is None:
        raise DepsError("apt-get not found; install by hand: " + " ".join(need))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if how == "sudo":
        # sudo drops most of the environment; pass the one variable that matters.
        cmds = [c[:2] + ["DEBIAN_FRONTEND=noninteractive"] + c[2:] for c in cmds]
    for c in cmds:
        out("ensure_deps: " + " ".join(c))
        subprocess.run(c, env=env, check=True)
    if "mosquitto" in need and shutil.which("systemctl"):
        # The package starts a broker on 1883; the tests start their own on free ports.
        stop = ["systemctl", "stop", "mosquitto"]
        subprocess.run(
            (["sudo", "-n"] if how == "sudo" else []) + stop,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    still = missing(need)
    if still:
        raise DepsError("still missing after apt-get install: " + " ".join(still))
    return 0


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    dry_run = "--dry-run" in args
    args = [a for a in args if a != "--dry-run"]
    if len(args) != 1 or args[0] not in PROFILES:
        print("usage: ensure_deps.py {%s} [--dry-run]" % ",".join(sorted(PROFILES)))
        return 64
    try:
        return ensure(args[0], dry_run)
    except (DepsError, subprocess.CalledProcessError) as exc:
        print("ensure_deps: %s" % exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
