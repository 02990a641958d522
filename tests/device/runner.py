"""Runs the test_* functions of one device-test module and reports each on stdout.

Usage: micropython runner.py MODULE [TEST ...]. Each test's report is framed by marker
lines that tests/conftest.py parses; everything a test prints goes between them.
"""

import sys

try:
    from tether.compat import print_exception
except ImportError:  # pragma: no cover - only when lib/ is missing from the path
    print_exception = sys.print_exception


def main(argv):
    modname = argv[1]
    wanted = argv[2:]
    mod = __import__(modname)
    names = wanted or sorted(n for n in dir(mod) if n.startswith("test_"))
    for name in names:
        fn = getattr(mod, name)
        print("@@TEST " + name)
        try:
            result = fn()
            # A coroutine (a generator here) returned by a test never ran: that is a
            # failure, not a pass (tests/conftest.py refuses `async def test_` for this).
            if result is not None and hasattr(result, "send"):
                result.close()
                raise AssertionError(
                    name + " returned a coroutine that never ran: wrap it, harness.run(...)"
                )
        except BaseException as exc:  # report KeyboardInterrupt/SystemExit too
            print("@@FAIL " + name)
            print_exception(exc, sys.stdout)
            print("@@DONE " + name)
            if not isinstance(exc, Exception):
                raise
            continue
        print("@@PASS " + name)
        print("@@DONE " + name)
    print("@@END")


main(sys.argv)
