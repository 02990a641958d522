"""Packaging: package.json, .mpy bundles per architecture, frozen manifests, board names."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mpy import ROOT

sys.path.insert(0, str(ROOT))
from tools import boards, bundle, pem2der  # noqa: E402

EXPECTED = {
    "ESP32": ("esp32", "xtensawin", "esp32", ["der"]),
    "PORTENTA_H7": ("stm32", "armv7emdp", "cyw43", ["der", "se05x"]),
    "NANO_RP2040_CONNECT": ("rp2", "armv6m", "nina", ["der"]),
}


def test_package_json_lists_every_library_module_at_the_code_version():
    sys.path.insert(0, str(ROOT / "lib"))
    import tether

    data = json.loads((ROOT / "package.json").read_text())
    listed = {target for target, _ in data["urls"]}
    on_disk = {
        str(p.relative_to(ROOT / "lib"))
        for p in (ROOT / "lib" / "tether").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert listed == on_disk, (
        "package.json is stale: run `python -m tools.bundle package-json` "
        "(missing %s, extra %s)" % (sorted(on_disk - listed), sorted(listed - on_disk))
    )
    assert data["version"] == tether.__version__
    assert data.get("deps", []) == []  # nothing a board must fetch elsewhere
    for target, url in data["urls"]:
        assert not url.startswith(("http", "github:")), url  # relative: works from any host
        assert (ROOT / url).is_file() and url == "lib/" + target


@pytest.mark.parametrize("arch", bundle.ARCHS)
def test_every_module_compiles_for_each_board_architecture(arch, tmp_path):
    out, sizes = bundle.build(None, tmp_path / arch, arch)
    mpys = [k for k in sizes if k.endswith(".mpy")]
    assert len(mpys) == len(bundle.library_modules()) + 1  # + tether_firmware
    for k in mpys:
        head = (out / k).read_bytes()[:2]
        assert head[0:1] == b"M" and head[1] == 6, k  # .mpy version 6 (MicroPython >= 1.22)
    for src in sorted((ROOT / "firmware").glob("*.py")):  # boot, main, app ship as source
        bundle.compile_module(src, tmp_path / "fw" / (src.stem + ".mpy"), arch, src.name)
    total = sum(sizes[k] for k in mpys)
    print("%s bundle: %d bytes of .mpy" % (arch, total))
    assert total < 200_000


def test_board_build_has_firmware_entry_points_and_board_defaults(tmp_path):
    out, sizes = bundle.build("portenta", tmp_path / "b")
    assert (out / "main.py").read_text() == (ROOT / "firmware" / "main.py").read_text()
    assert (out / "boot.py").exists() and (out / "lib" / "tether_firmware.mpy").exists()
    assert json.loads((out / "tether_board.json").read_text())["name"] == "PORTENTA_H7"


@pytest.mark.parametrize("board", sorted(EXPECTED))
def test_board_json_describes_the_board(board):
    info = boards.load(board)
    port, arch, wifi, creds = EXPECTED[board]
    assert (info["port"], info["mpy_arch"], info["wifi"], info["credentials"]) == (
        port,
        arch,
        wifi,
        creds,
    )
    for key in ("micropython_board", "led_pin", "heap_budget_kb", "firmware_image", "flash"):
        assert key in info
    assert (ROOT / "boards" / board / "manifest.py").exists()


@pytest.mark.parametrize(
    "name,board",
    [
        ("esp32", "ESP32"),
        ("ESP32", "ESP32"),
        ("portenta", "PORTENTA_H7"),
        ("Portenta_H7", "PORTENTA_H7"),
        ("nano", "NANO_RP2040_CONNECT"),
        ("nano_rp2040", "NANO_RP2040_CONNECT"),
        ("NANO-RP2040-CONNECT", "NANO_RP2040_CONNECT"),
    ],
)
def test_board_names_are_case_insensitive_with_short_forms(name, board):
    assert boards.resolve(name) == board


def test_unknown_board_lists_the_choices():
    with pytest.raises(ValueError, match="portenta"):
        boards.resolve("uno")
    proc = subprocess.run(
        ["make", "-s", "-o", ".venv/.stamp", "mpy", "BOARD=uno"],
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "unknown board 'uno'" in proc.stderr


def _run_manifest(path, calls):
    """Execute a manifest the way MicroPython's manifestfile does, recording what it asks."""
    base = path.parent

    def include(p, **kw):
        if p.startswith("$("):
            calls.append(("include", p))
            return
        _run_manifest((base / p).resolve(), calls)

    def package(name, base_path=".", **kw):
        calls.append(("package", (base / base_path / name).resolve()))

    def module(name, base_path=".", **kw):
        calls.append(("module", (base / base_path / name).resolve()))

    exec(path.read_text(), {"include": include, "package": package, "module": module})


@pytest.mark.parametrize("board", sorted(EXPECTED))
def test_board_manifest_includes_the_port_and_freezes_tether(board):
    calls = []
    _run_manifest(ROOT / "boards" / board / "manifest.py", calls)
    port_includes = [c[1] for c in calls if c[0] == "include"]
    assert len(port_includes) == 1 and port_includes[0].startswith(("$(BOARD_DIR)", "$(PORT_DIR)"))
    assert ("package", ROOT / "lib" / "tether") in calls
    frozen = {c[1].name for c in calls if c[0] == "module"}
    assert frozen == {"boot.py", "main.py", "tether_firmware.py"}
    for kind, p in calls:
        if kind != "include":
            assert Path(p).exists(), p


def test_firmware_target_builds_with_the_board_manifest(tmp_path):
    mpy = tmp_path / "micropython"
    (mpy / "ports").mkdir(parents=True)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.bundle",
            "firmware",
            "Nano",
            "--mpy-dir",
            str(mpy),
            "--dry-run",
        ],
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    manifest = ROOT / "boards" / "NANO_RP2040_CONNECT" / "manifest.py"
    assert (
        "ports/rp2 BOARD=ARDUINO_NANO_RP2040_CONNECT FROZEN_MANIFEST=%s" % manifest in proc.stdout
    )
    assert "firmware.uf2" in proc.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "tools.bundle", "firmware", "esp32", "--mpy-dir", str(tmp_path)],
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "not a MicroPython checkout" in bad.stderr


def test_pem2der_converts_keys_and_certificates(tmp_path):
    from tools.pki import make_pki

    paths = make_pki(str(tmp_path / "pki"))
    for pem, der in (
        ("device_key_pem", "device_key_der"),
        ("device_cert_pem", "device_cert_der"),
    ):
        src = Path(paths[pem])
        copy = tmp_path / src.name
        copy.write_text(src.read_text())
        assert pem2der.main([str(copy)]) == 0
        assert copy.with_suffix(".der").read_bytes() == Path(paths[der]).read_bytes()


def test_pem2der_refuses_encrypted_keys_and_der_input(tmp_path):
    enc = tmp_path / "enc.pem"
    enc.write_text(
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n"
    )
    with pytest.raises(pem2der.ConversionError, match="encrypted"):
        pem2der.convert(enc)
    der = tmp_path / "k.der"
    der.write_bytes(b"\x30\x03\x02\x01\x00")
    assert pem2der.main([str(der)]) == 1
