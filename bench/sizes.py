""".mpy sizes for `make bench`: a snapshot of the sources, compiled per architecture."""

import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import bundle  # noqa: E402


def snapshot_sources(dst):
    """Copy the library and firmware sources to dst/lib and dst/firmware, so that every
    figure of one run comes from the same code even while the tree is being edited."""
    dst = Path(dst)
    for rel in bundle.library_modules():
        (dst / "lib" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "lib" / rel, dst / "lib" / rel)
    (dst / "firmware").mkdir(parents=True, exist_ok=True)
    for path in (ROOT / "firmware").glob("*.py"):  # tether_firmware, tether_settings, ...
        shutil.copy(path, dst / "firmware" / path.name)
    return dst


def compile_tree(src, out, arch):
    """mpy-cross (tools/bundle.py's) every module of a snapshot: {path under lib: bytes}."""
    src, out = Path(src), Path(out)
    sizes_ = {}
    rels = sorted(str(p.relative_to(src / "lib")) for p in (src / "lib" / "tether").rglob("*.py"))
    # the firmware's modules (boot.py / main.py are counted apart, as the manifest freezes them)
    firmware = sorted(
        p.name for p in (src / "firmware").glob("*.py") if p.name not in ("boot.py", "main.py")
    )

    def one(rel):
        source = src / "lib" / rel if rel.startswith("tether/") else src / "firmware" / rel
        dst = out / "lib" / (rel[:-3] + ".mpy")
        bundle.compile_module(source, dst, arch, rel)
        return rel[:-3] + ".mpy", dst.stat().st_size

    # A hundred short mpy-cross processes: four at a time (sizes do not depend on the order).
    with ThreadPoolExecutor(4) as pool:
        for name, size in pool.map(one, rels + firmware):
            sizes_[name] = size
    return sizes_


def sizes(src):
    """.mpy bytes per architecture, per module, and of the frozen manifest's contents."""
    src = Path(src)
    out = {"by_arch": {}, "modules": {}, "source_bytes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for arch in bundle.ARCHS:
            mpy = compile_tree(src, Path(tmp) / arch, arch)
            lib_only = sum(v for k, v in mpy.items() if k.startswith("tether/"))
            # manifest.py freezes the package, tether_firmware and boot.py/main.py
            frozen = sum(mpy.values())
            for name in ("boot.py", "main.py"):
                dst = Path(tmp) / arch / "frozen" / (name[:-3] + ".mpy")
                bundle.compile_module(src / "firmware" / name, dst, arch, name)
                frozen += dst.stat().st_size
            out["by_arch"][arch] = {
                "library_mpy": lib_only,
                "bundle_mpy": sum(mpy.values()),
                "frozen_manifest_mpy": frozen,
            }
            for k, v in mpy.items():
                out["modules"].setdefault(k, {})[arch] = v
    for p in sorted((src / "lib").rglob("*.py")):
        out["source_bytes"][str(p.relative_to(src / "lib"))] = p.stat().st_size
    for fw in sorted((src / "firmware").glob("*.py")):
        if fw.name not in ("boot.py", "main.py"):
            out["source_bytes"][fw.name] = fw.stat().st_size
    out["source_total"] = sum(out["source_bytes"].values())
    return out
