"""No code path in lib/ hands a secret to a logger, print() or an exception message.

A static check over the syntax tree of every module under lib/tether: the arguments of each
log call (`*.debug/info/warning/error/exception/critical/log`), `print()` and `raise X(...)`
may not name a variable or attribute that holds a password, PIN, secret, token or private
key. A secret passed through `redact()` (tether.hsm) is allowed. The dynamic counterpart
(a known password and PIN at DEBUG level, output searched) is in test_tls_broker.py and
test_tls_hsm.py.
"""

import ast
import re
from pathlib import Path

LIB = Path(__file__).resolve().parent.parent / "lib" / "tether"

SECRET = re.compile(
    r"(^|_)(password|passwd|pwd|pass|secret|secret_key|pin|token|private_key|privkey|key_der|key_b64|group_key_b64|sas_key)$",
    re.IGNORECASE,
)
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical", "log"}
SAFE_WRAPPERS = {"redact", "len", "type", "bool"}


def _names(node):
    """Identifiers used in node, except inside a call to a SAFE_WRAPPERS function."""
    if isinstance(node, ast.Call):
        fn = node.func
        fname = fn.id if isinstance(fn, ast.Name) else getattr(fn, "attr", "")
        if fname in SAFE_WRAPPERS:
            return
    if isinstance(node, ast.Name):
        yield node.id
    elif isinstance(node, ast.Attribute):
        yield node.attr
    for child in ast.iter_child_nodes(node):
        yield from _names(child)


def _is_output_call(call):
    fn = call.func
    if isinstance(fn, ast.Name):
        return fn.id == "print"
    if isinstance(fn, ast.Attribute) and fn.attr in LOG_METHODS:
        owner = fn.value
        name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
        return "log" in name.lower()
    return False


def leaks(source, filename="<src>"):
    """(line, identifier) for each secret-looking name that reaches an output."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        args = []
        if isinstance(node, ast.Call) and _is_output_call(node):
            args = list(node.args) + [k.value for k in node.keywords]
        elif isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            args = list(node.exc.args)
        for a in args:
            for name in _names(a):
                if SECRET.search(name):
                    found.append((node.lineno, name))
    return found


def test_the_checker_finds_a_logged_secret():
    # The check itself can fail: these are what it must catch.
    assert leaks("_log.debug('pw %s', self._password)")
    assert leaks("log.info('%s', password)")
    assert leaks("print(cfg.secret_key)")
    assert leaks("raise ValueError('bad pin %s' % pin)")
    assert leaks("_log.warning('x %r', (user, token))")
    assert not leaks("_log.info('key %s', redact(key))")
    assert not leaks("_log.info('connected in %d ms', ms)")
    assert not leaks("_log.info('password length %d', len(password))")


def test_no_module_logs_prints_or_raises_a_secret():
    problems = []
    for path in sorted(LIB.rglob("*.py")):
        for line, name in leaks(path.read_text(), str(path)):
            problems.append("%s:%d: %s" % (path.relative_to(LIB.parent), line, name))
    assert not problems, "secrets reach an output:\n" + "\n".join(problems)
