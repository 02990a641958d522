"""The credential modules import only downward: no cycle, lazy imports included.

Every `import tether.x` / `from tether... import y` in lib/tether, at module level or inside
a function, is an arrow. tether.errors is a leaf; tlsctx reaches neither hsm, creds, the
SE05x nor the signers; nothing the credential modules import leads back to them.
"""

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parent.parent / "lib"
MINE = (
    "tether.errors",
    "tether.certs",
    "tether.credentials",
    "tether.tlsctx",
    "tether.tlshost",
    "tether.tlscause",
    "tether.nocert",
    "tether.hsm",
    "tether.creds",
    "tether.signer",
    "tether.arduino.ssl_params",
)


def _module_name(path):
    parts = list(path.relative_to(LIB).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _exists(name):
    base = LIB.joinpath(*name.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def graph():
    arrows = {}
    for path in LIB.rglob("*.py"):
        name = _module_name(path)
        out = arrows.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names if a.name.startswith("tether"))
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tether"):
                for a in node.names:
                    sub = node.module + "." + a.name
                    out.add(sub if _exists(sub) else node.module)
    return arrows


def _reach(arrows, start):
    seen, todo = set(), [start]
    while todo:
        for nxt in arrows.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_no_credential_module_is_on_an_import_cycle():
    arrows = graph()
    for name in MINE:
        assert name in arrows, name
        assert name not in _reach(arrows, name), "%s imports itself through %s" % (
            name,
            sorted(_reach(arrows, name)),
        )


def test_errors_is_a_leaf_and_tlsctx_stays_below_the_dispatchers():
    arrows = graph()
    assert arrows["tether.errors"] == set()
    below = _reach(arrows, "tether.tlsctx")
    for upper in ("tether.hsm", "tether.creds", "tether.signer", "tether.hal.se05x"):
        assert upper not in below, sorted(below)
    assert "tether.creds" not in _reach(arrows, "tether.hsm")


def test_the_host_half_of_tlsctx_never_imports_it_back():
    arrows = graph()
    assert "tether.tlsctx" not in _reach(arrows, "tether.tlshost")
    assert "tether.tlsctx" not in _reach(arrows, "tether.tlscause")
