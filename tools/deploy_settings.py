"""What `make deploy` takes from a settings.json besides the bundle (tools/bundle.py): the
cloud it names, whether it needs certificate authentication, and the files the board must
hold (secrets, credentials, CA files, Astarte's interfaces precompiled to *.ifc)."""

import json
import shutil
from pathlib import Path


def settings_cloud(settings):
    """The cloud a settings file names (None: no file)."""
    if not settings or not Path(settings).exists():
        return None
    return json.loads(Path(settings).read_text()).get("cloud", "arduino")


def settings_certauth(settings):
    """True when a settings file uses certificate authentication: a key or certificate, a
    PEM CA, or the unix port's fake SE05x (tether-certauth must be in the bundle)."""
    if not settings or not Path(settings).exists():
        return False
    data = json.loads(Path(settings).read_text())
    spec = data.get("credentials") or {}
    if spec.get("key") or spec.get("cert") or "se05x" in (data.get("fake") or {}):
        return True
    if str((data.get("astarte") or {}).get("key") or "").startswith("se05x:"):
        return True  # Astarte's own key and certificate go to TLS without it; the SE05x not
    cas = spec.get("ca") or []
    for ca in cas if isinstance(cas, list) else [cas]:
        path = Path(settings).parent / ca if isinstance(ca, str) else None
        if isinstance(ca, str) and ca.startswith("-----"):
            return True
        if path is not None and path.is_file() and path.read_bytes()[:5] == b"-----":
            return True
    return False


def settings_files(settings):
    """(local path, board path) of the settings, their secrets and credential files."""
    settings = Path(settings)
    if not settings.exists():
        return []
    files = [(settings, "settings.json")]
    data = json.loads(settings.read_text())
    base = settings.parent
    names = [data.get("secrets")] if data.get("secrets") else ["secrets.json", "secrets.py"]
    for name in names:
        if (base / name).exists():
            files.append((base / name, name))
    for value in (data.get("credentials") or {}).values():
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and not v.startswith("se05x:") and (base / v).exists():
                files.append((base / v, v))
    ca = (data.get("astarte") or {}).get("ca")
    if isinstance(ca, str) and (base / ca).is_file():
        files.append((base / ca, ca))
    return files


def astarte_interfaces(settings, stage):
    """(local path, board path) of an Astarte device's interfaces (settings' astarte.interfaces
    folder): each JSON file checked and precompiled here into `stage` as the compact *.ifc a
    board reads without the interface parser (tools/astarte_ifc.py; a bad file stops the
    deploy, naming it); *.ifc files as they are."""
    settings = Path(settings)
    data = json.loads(settings.read_text())
    if data.get("cloud") != "astarte":
        return []
    shutil.rmtree(stage, ignore_errors=True)  # nothing left from an earlier deploy
    folder = (data.get("astarte") or {}).get("interfaces", "interfaces")
    src = settings.parent / folder
    if not src.is_dir():
        raise SystemExit("the Astarte interfaces folder %s is missing" % src)
    from tools import astarte_ifc  # puts lib/ on sys.path

    # isort: split
    from tether.astarte.errors import AstarteError

    files = [(p, "%s/%s" % (folder, p.name)) for p in sorted(src.glob("*.ifc"))]
    try:
        compiled = astarte_ifc.compile_paths([src], Path(stage))
    except AstarteError as exc:  # names the file and the field
        raise SystemExit("Astarte interface refused, nothing deployed: %s" % exc) from None
    return files + [(p, "%s/%s" % (folder, p.name)) for p in compiled]
