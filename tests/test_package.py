"""Packaging: package.json, .mpy bundles per architecture, frozen manifests, board names."""

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from mpy import ROOT

sys.path.insert(0, str(ROOT))
from tools import boards, bundle, components, firmware, pem2der  # noqa: E402

EXPECTED = {
    "ESP32": ("esp32", "xtensawin", "esp32", ["der"]),
    "PORTENTA_H7": ("stm32", "armv7emdp", "cyw43", ["der", "se05x"]),
    "NANO_RP2040_CONNECT": ("rp2", "armv6m", "nina", ["der"]),
}


def test_every_library_module_belongs_to_a_component():
    # A new module must be named in one manifest (manifests/<component>/manifest.py), or
    # be CPython-only (components.HOST_ONLY); otherwise no image or package carries it.
    missing = components.unassigned()
    assert missing == [], (
        "in no component: %s: add each to a manifest in manifests/ (core: manifests/tether)"
        % ", ".join(missing)
    )
    owner = {}
    for name in components.names():
        for target in components.own_targets(name):
            assert target not in owner, "%s is in %s and %s" % (target, owner[target], name)
            owner[target] = name


@pytest.mark.parametrize("name", components.names())
def test_each_component_holds_what_its_modules_import(name):
    # Module-level imports must be in the component or what it requires, so an image with
    # this component alone imports (lazy imports are optional features, e.g. SE05x).
    targets = components.evaluate(name).targets()
    assert components.missing_imports(targets) == []


def test_the_package_files_match_the_manifests_at_the_code_version():
    sys.path.insert(0, str(ROOT / "lib"))
    import tether

    assert bundle.write_package_files(check=True) == [], (
        "stale: run `python -m tools.bundle package-json`"
    )
    names = {p.name for p in ROOT.glob("package*.json")}
    assert names == {"package.json", "package-core.json", "package-certauth.json"} | {
        "package-%s.json" % c for c in components.clouds()
    }
    core = set(components.evaluate("tether").targets())
    for name in names:
        data = json.loads((ROOT / name).read_text())
        listed = {target for target, _ in data["urls"]}
        assert data["version"] == tether.__version__
        assert data.get("deps", []) == []  # self-contained: mip cannot follow a relative dep
        assert core <= listed, name  # every package carries the core
        for target, url in data["urls"]:
            assert not url.startswith(("http", "github:")), url  # relative: works from any host
            assert (ROOT / url).is_file() and url == "lib/" + target
            assert target not in components.HOST_ONLY and "/fake" not in target, (name, target)

    def listed(name):
        return {t for t, _ in json.loads((ROOT / name).read_text())["urls"]}

    # package.json, what `mip install github:OWNER/REPO` takes: Arduino with every kind of
    # auth (certificate auth too); package-arduino.json: password auth only
    certauth = set(components.evaluate("tether-certauth").targets()) - core
    default = listed("package.json")
    arduino = components.image(("arduino",), certauth=True)
    assert default == set(components.library_targets(arduino))
    assert "tether/arduino/client.py" in default and "tether/hsm.py" not in default
    assert certauth <= default and "tether/nocert.py" not in default
    plain = listed("package-arduino.json")
    assert not certauth & plain and "tether/nocert.py" in plain
    assert plain == set(components.library_targets(components.image(("arduino",))))
    # package-certauth.json: installed after a cloud's package, it adds certificate auth
    assert listed("package-certauth.json") == core | certauth
    for cloud in ("akenza", "sap"):
        assert certauth <= listed("package-%s.json" % cloud), cloud
    # Astarte's own key and certificate need only tether.der (package-certauth.json adds the
    # rest for an SE05x key); what a device image leaves out, mip leaves out too, except the
    # interface JSON parser: a filesystem install reads the JSON files users have
    astarte = listed("package-astarte.json")
    assert certauth & astarte == {"tether/der.py"} and "tether/keys.py" in astarte
    assert "tether/astarte/interfaces.py" in astarte
    for target in ASTARTE_OPTIONAL - {"tether/astarte/interfaces.py"}:
        assert target not in astarte, target
    only_core = listed("package-core.json")
    assert only_core == core and not any(t.startswith("tether/arduino/") for t in only_core)
    assert not certauth & only_core


def test_clouds_are_components_with_a_profile_the_firmware_knows():
    sys.path.insert(0, str(ROOT / "firmware"))
    import tether_firmware

    assert "arduino" in components.clouds()
    for cloud in components.clouds():
        assert cloud in tether_firmware.CLOUDS
        assert "tether/%s/profile.py" % cloud in components.own_targets("tether-" + cloud)
        text = (ROOT / "lib" / "tether" / cloud / "profile.py").read_text()
        assert "\ndef make_client(settings):" in text


def test_images_for_a_board_never_carry_host_only_modules_or_fakes():
    for clouds in [("arduino",)] + [(c,) for c in components.clouds()]:
        targets = {t for _, t in components.image(clouds)}
        assert "tether/hsm.py" not in targets
        assert not any(t.startswith("tether/hal/fake") for t in targets)
        assert {"tether_firmware.py", "tether_settings.py", "boot.py", "main.py"} <= targets
    unix = {t for _, t in components.image(("arduino",), fakes=True)}
    assert {"tether/hal/fakes.py", "tether/hal/fake_se05x.py"} <= unix
    assert "tether/hsm.py" not in unix
    without = {t for _, t in components.image((), firmware=False)}
    assert without == set(components.evaluate("tether").targets())


def test_every_module_is_frozen_and_bundled_at_opt_3(tmp_path):
    # opt=3 as MicroPython's asyncio: no line numbers in the bytecode (6% of the flash)
    opts = components.opt_levels()
    assert set(opts.values()) == {components.OPT} == {3}
    for name in components.names():
        assert set(components.evaluate(name).opts.values()) == {3}, name
    src = ROOT / "lib" / "tether" / "mqtt.py"
    bundle.compile_module(src, tmp_path / "o0.mpy", "armv6m", "tether/mqtt.py")
    bundle.compile_module(src, tmp_path / "o3.mpy", "armv6m", "tether/mqtt.py", 3)
    assert (tmp_path / "o3.mpy").stat().st_size < (tmp_path / "o0.mpy").stat().st_size
    out, sizes = bundle.build("esp32", tmp_path / "b")
    assert sizes["lib/tether/mqtt.mpy"] == (tmp_path / "o3.mpy").stat().st_size


CERTAUTH = {"tether/creds.py", "tether/certs.py", "tether/signer.py"}
# What an Astarte image carries only when asked: certificate auth (an SE05x key), agent
# registration with a realm key (JWT, RSA), loading key files, the P-256 comb table, the
# interface JSON parser
ASTARTE_OPTIONAL = CERTAUTH | {
    "tether/hal/se05x.py",
    "tether/jwt.py",
    "tether/rsa.py",
    "tether/keyload.py",
    "tether/p256_table.py",
    "tether/astarte/interfaces.py",
}


def test_certificate_auth_is_a_component_an_image_adds_when_it_needs_it():
    # Certificate authentication (10 KB) is tether-certauth: akenza and SAP require it;
    # Arduino and Azure carry tether.nocert instead unless the image asks for it
    # (certauth=True), and never both; Astarte takes it as an option too (an SE05x key).
    # tether.der is its own block (tether-der): certauth, keys and CSRs use it.
    own = set(components.own_targets("tether-certauth"))
    assert own == CERTAUTH | {"tether/hal/se05x.py"}
    assert components.own_targets("tether-der") == ["tether/der.py"]
    assert components.kind("tether-certauth") == components.kind("tether-nocert") == "block"
    assert not own & set(components.evaluate("tether").targets())
    for name in ("tether-akenza", "tether-sap"):
        assert "tether-certauth" in components.evaluate(name).requires, name
    for name in ("tether-astarte", "tether-keys", "tether-jwt", "tether-csr"):
        assert "tether-certauth" not in components.evaluate(name).requires, name
        assert "tether-der" in components.evaluate(name).requires, name
    der = {"tether/der.py"}
    for cloud in ("arduino", "azure"):
        plain = {t for _, t in components.image((cloud,))}
        assert not (own | der) & plain and "tether/nocert.py" in plain, cloud
        full = {t for _, t in components.image((cloud,), certauth=True)}
        assert own | der <= full and "tether/nocert.py" not in full, cloud
        assert full - own - der == plain - {"tether/nocert.py"}, cloud
    plain = {t for _, t in components.image(("astarte",))}
    assert not own & plain and der <= plain and "tether/nocert.py" not in plain
    full = {t for _, t in components.image(("astarte",), certauth=True)}
    assert full - own == plain
    assert own <= {t for _, t in components.image((), certauth=True)}
    # each board's default: password auth (the Portenta's SE05x: certauth=True); the unix
    # image has it, for the tests and the demo
    defaults = {"ESP32": False, "NANO_RP2040_CONNECT": False, "PORTENTA_H7": False, "UNIX": True}
    for board, want in defaults.items():
        bdir = ROOT / "boards" / board
        assert components.board_certauth(bdir) is want, board
        for certauth in (False, True):
            targets = {t for _, t in components.board_image(bdir, ("arduino",), certauth)}
            assert (own <= targets) is certauth and ("tether/nocert.py" in targets) is not certauth


def test_an_astarte_image_leaves_out_what_only_some_devices_use():
    # Each is a block an image adds when asked; akenza, which signs a JWT at every renewal
    # with an EC or RSA key, requires the comb table and RSA.
    plain = {t for _, t in components.image(("astarte",), False)}
    assert not ASTARTE_OPTIONAL & plain
    for target in ("tether/keys.py", "tether/p256.py", "tether/csr.py", "tether/der.py"):
        assert target in plain, target
    akenza = components.evaluate("tether-akenza").requires
    for block in ("tether-p256table", "tether-rsa", "tether-keyload"):
        assert block in akenza, block
    jwt = components.evaluate("tether-jwt").requires
    assert "tether-rsa" in jwt and "tether-keyload" in jwt
    m = components.Manifest()
    m.add_library("tether", str(components.MANIFESTS))
    files = m.execute(
        components.MANIFESTS / "tether-astarte" / "manifest.py", interface_json=True
    ).targets()
    assert "tether/astarte/interfaces.py" in files
    assert components.own_targets("tether-astarte-json") == ["tether/astarte/interfaces.py"]
    # every module of the folder is in the cloud or its parser block
    folder = {
        "tether/astarte/" + p.name for p in (ROOT / "lib" / "tether" / "astarte").glob("*.py")
    }
    assert folder == set(components.own_targets("tether-astarte")) | {
        "tether/astarte/interfaces.py"
    }


def test_tls_parts_a_board_does_not_run_stay_out_of_its_image():
    # tlsctx's CPython half (tether.tlshost) is host-only, like hsm.py; the TLS failure
    # causes (tether.tlscause) go with what reports failures (http, SAP); request/response
    # correlation (tether.cloud.requests) with the cloud that correlates replies (Azure).
    # All three stay reachable where they were (tlsctx.explain, ...).
    assert "tether/tlshost.py" in components.HOST_ONLY
    arduino = {t for _, t in components.board_image(ROOT / "boards" / "PORTENTA_H7")}
    for target in ("tether/tlshost.py", "tether/tlscause.py", "tether/cloud/requests.py"):
        assert target not in arduino, target
    for cloud in components.clouds():
        assert "tether/tlshost.py" not in {t for _, t in components.image((cloud,))}, cloud
    assert "tether/cloud/requests.py" in {t for _, t in components.image(("azure",))}
    for name in ("tether-http", "tether-sap", "tether-astarte"):
        assert "tether/tlscause.py" in components.evaluate(name).targets(), name
    sys.path.insert(0, str(ROOT / "lib"))
    from tether import tlscause, tlsctx, tlshost

    assert tlsctx.explain is tlscause.explain
    assert tlsctx.load_cert_chain_bytes is tlshost.load_cert_chain_bytes
    assert "expired" in tlsctx.explain("certificate has expired")


def test_the_manifest_reader_follows_micropythons_semantics(tmp_path):
    # require() finds <library>/**/<name>/manifest.py, a manifest runs once however often it
    # is required, package() without files takes every .py, options reach an include.
    lib = tmp_path / "lib" / "pkg"
    (lib / "sub").mkdir(parents=True)
    for f in ("a.py", "b.py", "sub/c.py", "notes.txt"):
        (lib / f).write_text("")
    libs = tmp_path / "manifests"
    (libs / "one").mkdir(parents=True)
    (libs / "deep" / "two").mkdir(parents=True)
    (libs / "one" / "manifest.py").write_text(
        'metadata(description="x")\npackage("pkg", files=("a.py",), base_path="../../lib")\n'
    )
    (libs / "deep" / "two" / "manifest.py").write_text(
        'require("one")\npackage("pkg/sub", base_path="../../../lib")\n'
    )
    top = tmp_path / "manifest.py"
    top.write_text(
        "options.defaults(extra=False)\n"
        'add_library("mine", "manifests")\n'
        'require("two", library="mine")\nrequire("one")\n'
        'if options.extra:\n    module("pkg/b.py", base_path="lib")\n'
        'include("$(PORT_DIR)/boards/manifest.py")\n'
    )
    m = components.Manifest().execute(top)
    assert m.targets() == ["pkg/a.py", "pkg/sub/c.py"]
    assert m.requires == ["two", "one"] and m.port_includes == ["$(PORT_DIR)/boards/manifest.py"]
    m = components.Manifest().execute(top, extra=True)
    assert m.targets()[-1] == "pkg/b.py"
    (libs / "one" / "manifest.py").write_text('module("pkg/gone.py", base_path="../../lib")\n')
    with pytest.raises(components.ManifestError, match="gone.py"):
        components.Manifest().execute(top)


@pytest.mark.parametrize("arch", bundle.ARCHS)
def test_every_module_compiles_for_each_board_architecture(arch, tmp_path):
    out, sizes = bundle.build(None, tmp_path / arch, arch)
    mpys = [k for k in sizes if k.endswith(".mpy")]
    expected = [t for _, t in bundle.bundle_files(("arduino",)) if t not in ("boot.py", "main.py")]
    assert sorted(mpys) == sorted("lib/" + t[:-3] + ".mpy" for t in expected)
    for k in mpys:
        head = (out / k).read_bytes()[:2]
        assert head[0:1] == b"M" and head[1] == 6, k  # .mpy version 6 (MicroPython >= 1.22)
    # Every component compiles, the unused blocks too; each file once (components share the
    # core), and four mpy-cross processes at a time: this test ran a minute per arch.
    jobs = {}
    for name in components.names():
        for src, target in components.evaluate(name).files():
            jobs[target] = (Path(src), tmp_path / "all" / (target + ".mpy"), arch, target)
    for src in sorted((ROOT / "firmware").glob("*.py")):  # boot, main, app ship as source
        jobs["fw/" + src.name] = (src, tmp_path / "fw" / (src.stem + ".mpy"), arch, src.name)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda job: bundle.compile_module(*job), jobs.values()))
    assert all(job[1].stat().st_size > 0 for job in jobs.values())
    total = sum(sizes[k] for k in mpys)
    print("%s bundle: %d bytes of .mpy" % (arch, total))
    assert total < 200_000


def test_board_build_has_firmware_entry_points_and_board_defaults(tmp_path):
    out, sizes = bundle.build("portenta", tmp_path / "b")
    assert (out / "main.py").read_text() == (ROOT / "firmware" / "main.py").read_text()
    assert (out / "boot.py").exists() and (out / "lib" / "tether_firmware.mpy").exists()
    assert json.loads((out / "tether_board.json").read_text())["name"] == "PORTENTA_H7"
    assert not (out / "lib" / "tether" / "hsm.mpy").exists()
    assert not (out / "lib" / "tether" / "hal" / "fakes.mpy").exists()
    assert not (out / "lib" / "tether" / "creds.mpy").exists()  # default: password auth
    drivers = sorted(p.name for p in (out / "lib" / "tether" / "hal").glob("wifi_*.mpy"))
    assert drivers == ["wifi_cyw43.mpy"]  # its radio's driver only
    out, _ = bundle.build("portenta", tmp_path / "sim", fakes=True)  # the simulated board
    assert (out / "lib" / "tether" / "hal" / "fakes.mpy").exists()
    out, _ = bundle.build("esp32", tmp_path / "esp")  # password auth: no certificate code
    assert not (out / "lib" / "tether" / "creds.mpy").exists()
    assert (out / "lib" / "tether" / "nocert.mpy").exists()
    out, _ = bundle.build("esp32", tmp_path / "esp2", certauth=True)
    assert (out / "lib" / "tether" / "creds.mpy").exists()
    assert (out / "lib" / "tether" / "hal" / "se05x.mpy").exists()
    with pytest.raises(ValueError, match="nimbus"):
        bundle.parse_clouds("arduino,nimbus")
    assert bundle.parse_clouds(" Arduino ") == ("arduino",)


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
    # the budget in the terms of issue 10: the scenario's smallest heap with Tether frozen
    # (TLS added where mbedTLS allocates from MicroPython's heap), core + one cloud in flash
    budget = info["budget"]
    assert "20 echoed writes" in budget["scenario"]
    assert budget["tether_heap_kb_frozen_32bit"] <= 31
    assert budget["flash_kb_core_and_one_cloud"] <= 90
    extra = 28 if budget["tls_on_gc_heap"] else 0
    assert info["heap_budget_kb"] == budget["heap_kb"] >= 31 + extra
    assert budget["tls_on_gc_heap"] == (port != "esp32")  # esp-idf's mbedTLS has its own heap
    if board == "PORTENTA_H7":
        assert budget["firmware_free_min_kb"] >= 40 and budget["firmware_region_kb"] == 1280
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


@pytest.mark.parametrize("board", sorted(EXPECTED) + ["UNIX"])
def test_board_manifest_includes_the_port_and_freezes_tether(board):
    path = ROOT / "boards" / board / "manifest.py"
    m = components.Manifest().execute(path)
    assert len(m.port_includes) == 1
    assert m.port_includes[0].startswith(("$(BOARD_DIR)", "$(PORT_DIR)", "$(MPY_DIR)"))
    unix = board == "UNIX"
    certauth = board == "UNIX"  # boards: password auth; the unix port tests every kind
    wifi = None if unix else (boards.load(board)["wifi"],)  # a board: its own radio only
    assert m.files() == components.image(("arduino",), True, unix, certauth, wifi)
    drivers = [t for t in m.targets() if t.startswith("tether/hal/wifi_")]
    assert drivers == (["tether/hal/wifi_%s.py" % wifi[0]] if wifi else drivers) and drivers
    assert {"boot.py", "main.py", "tether_firmware.py"} <= set(m.targets())
    other = components.Manifest().execute(path, clouds=())  # what --clouds passes
    assert not any(t.startswith("tether/arduino/") for t in other.targets())
    assert "tether/mqtt.py" in other.targets()


def _firmware(*args):
    return subprocess.run(
        [sys.executable, "-m", "tools.bundle", "firmware", *args],
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_firmware_target_builds_in_its_own_folder_per_board_and_manifest(tmp_path):
    mpy = tmp_path / "micropython"
    (mpy / "ports").mkdir(parents=True)
    proc = _firmware("Nano", "--mpy-dir", str(mpy), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    cmds, manifest, text, build_dir, image, _ = firmware.plan("nano", mpy, ("arduino",))
    assert manifest.parent.parent == ROOT / "build" / "firmware"
    assert manifest.parent.name.startswith("NANO_RP2040_CONNECT-arduino-")
    make = " ".join(cmds[-1])
    assert make in proc.stdout and "submodules" in " ".join(cmds[1])
    assert "ports/rp2 BOARD=ARDUINO_NANO_RP2040_CONNECT" in make
    assert "BUILD=%s FROZEN_MANIFEST=%s" % (build_dir, manifest) in make
    assert str(ROOT / "boards" / "NANO_RP2040_CONNECT" / "manifest.py") in text
    assert "clouds=('arduino',), certauth=False)" in text and image == build_dir / "firmware.uf2"
    # certificate auth: the board's default (off), or asked for (--certauth, CERTAUTH=1); an
    # image with it gets its own folder
    portenta = firmware.plan("portenta", mpy, ("arduino",), certauth=True)
    assert portenta[1].parent.name.startswith("PORTENTA_H7-arduino+certauth-")
    assert "certauth=True)" in portenta[2]
    no = firmware.plan("portenta", mpy, ("arduino",))
    assert no[1].parent.name.startswith("PORTENTA_H7-arduino-") and "certauth=False)" in no[2]
    proc = _firmware("portenta", "--mpy-dir", str(mpy), "--dry-run", "--certauth")
    assert proc.returncode == 0 and "PORTENTA_H7-arduino+certauth-" in proc.stdout, proc.stdout
    assert "arduino, certauth, firmware" in proc.stdout.splitlines()[0], proc.stdout
    # another manifest (other clouds) or another MicroPython tree: another folder
    other = firmware.plan("nano", mpy, ())[1]
    tree = tmp_path / "mp2"
    (tree / "ports").mkdir(parents=True)
    assert (
        len({manifest.parent, other.parent, firmware.plan("nano", tree, ("arduino",))[1].parent})
        == 3
    )
    unix = firmware.plan("unix", mpy, ("arduino",), extra=["-j4"])[0][-1]
    assert "VARIANT=standard" in unix and unix[-1] == "-j4"
    proc = _firmware("esp32", "--mpy-dir", str(mpy), "--dry-run", "--no-submodules", "--", "V=1")
    assert proc.returncode == 0 and " submodules" not in proc.stdout
    assert proc.stdout.splitlines()[-2].endswith(" V=1"), proc.stdout
    bad = _firmware("esp32", "--mpy-dir", str(tmp_path))
    assert bad.returncode == 2 and "not a MicroPython checkout" in bad.stderr
    bad = _firmware("esp32", "--mpy-dir", str(mpy), "--clouds", "nimbus", "--dry-run")
    assert bad.returncode == 2 and "cloud 'nimbus' has no component" in bad.stderr


def _frozen_build(tmp_path, names):
    build = tmp_path / "build"
    (build / "sub").mkdir(parents=True)
    body = "".join('    "%s\\0"\n' % n for n in names)
    (build / "sub" / "frozen_content.c").write_text(
        "#include <stdint.h>\nconst char mp_frozen_names[] = {\n"
        "    #ifdef MP_FROZEN_STR_NAMES\n    MP_FROZEN_STR_NAMES\n    #endif\n"
        + body
        + '"\\0"};\n'
    )
    image = build / "firmware.bin"
    image.write_bytes(b"image")
    return build, image


def test_a_build_is_checked_for_every_module_of_its_manifests(tmp_path):
    expected = [t for _, t in components.image(("arduino",))]
    build, image = _frozen_build(tmp_path, ["asyncio/core.py"] + expected)
    assert firmware.check(build, image, expected) == sorted(expected)
    build, image = _frozen_build(tmp_path / "a", ["asyncio/core.py"])  # rp2's stale folder
    with pytest.raises(firmware.FirmwareError, match="lacks .*tether/mqtt.py"):
        firmware.check(build, image, expected)
    build, image = _frozen_build(tmp_path / "b", expected + ["tether/hsm.py"])
    with pytest.raises(firmware.FirmwareError, match="must not: tether/hsm.py"):
        firmware.check(build, image, expected)
    build, image = _frozen_build(tmp_path / "c", expected)
    with pytest.raises(firmware.FirmwareError, match="not rebuilt"):
        firmware.check(build, image, expected, started=image.stat().st_mtime + 60)
    image.unlink()
    with pytest.raises(firmware.FirmwareError, match="no image"):
        firmware.check(build, image, expected)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(firmware.FirmwareError, match="nothing was frozen"):
        firmware.check(empty, tmp_path / "a" / "build" / "firmware.bin", [])


def test_make_firmware_fails_when_the_port_build_leaves_tether_out(tmp_path, monkeypatch):
    # The rp2 case: make succeeds, but the image was made from a stale manifest.
    tree = tmp_path / "mp"
    (tree / "ports").mkdir(parents=True)
    monkeypatch.setattr(firmware, "workdir", lambda *a: tmp_path / "work")
    cmds, manifest, _, build_dir, image, _ = firmware.plan("nano", tree, ("arduino",))
    nano = ROOT / "boards" / "NANO_RP2040_CONNECT"
    expected = [t for _, t in components.board_image(nano, ("arduino",))]
    stale = build_dir / "frozen_content.c"
    ran = []

    def fake_make(names):
        def run(cmd, env=None):
            ran.append((cmd, stale.exists() or old_mpy.exists(), env.get("MAKEFLAGS")))
            if cmd[-1] != "submodules" and "mpy-cross" not in cmd[2]:
                build = _frozen_build(tmp_path / ("out%d" % len(ran)), names)[0]
                build_dir.mkdir(parents=True, exist_ok=True)
                stale.write_text((build / "sub" / "frozen_content.c").read_text())
                image.write_bytes(b"image")
            return subprocess.CompletedProcess(cmd, 0)

        return run

    build_dir.mkdir(parents=True)
    stale.write_text("stale")
    old_mpy = build_dir / "frozen_mpy" / "tether" / "mqtt.mpy"  # compiled with another opt=
    old_mpy.parent.mkdir(parents=True)
    old_mpy.write_bytes(b"M")
    monkeypatch.setenv("MAKEFLAGS", " -- BOARD=nano")  # as under `make firmware`
    monkeypatch.setattr(firmware.subprocess, "run", fake_make(["asyncio/core.py"]))
    assert firmware.build("nano", tree) == 1  # make said yes; the check says no
    assert ran[0][1] is False and ran[0][2] is None  # stale content gone; no MAKEFLAGS leak
    assert not old_mpy.exists()
    assert manifest.read_text().startswith("# Generated by tools/firmware.py")
    monkeypatch.setattr(firmware.subprocess, "run", fake_make(expected))
    assert firmware.build("nano", tree) == 0


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


def test_flash_per_component_adds_up_per_board():
    from bench import flash

    rows = {r["component"]: r for r in flash.mpy_rows()}
    assert set(components.names()) < set(rows)
    for cloud in components.clouds():
        total = rows["core + " + cloud]
        reqs = [r for r in components.evaluate("tether-" + cloud).requires if r != "tether"]
        for board in flash.BOARDS:
            parts = ["tether", "tether-" + cloud] + reqs
            assert total[board] == sum(rows[p][board] for p in parts), (cloud, board)
            fw = rows["core + %s + firmware" % cloud][board]
            assert fw == total[board] + rows["tether-firmware"][board]
        assert total["budget_kb"] == 90 and "within" in total
    # with certificate auth: the certauth block (and tether.der) instead of nocert
    for cloud in ("arduino", "azure", "astarte"):
        with_it = rows["core + %s + certauth" % cloud]
        for board in flash.BOARDS:
            swap = rows["tether-certauth"][board]  # Astarte has tether.der, no nocert
            if cloud != "astarte":
                swap += rows["tether-der"][board] - rows["tether-nocert"][board]
            assert with_it[board] == rows["core + " + cloud][board] + swap, (cloud, board)
    assert "core + akenza + certauth" not in rows  # akenza requires it: one row
    image = rows["board's default image"]
    for board in flash.BOARDS:
        assert image[board] == rows["core + arduino + firmware"][board], board
