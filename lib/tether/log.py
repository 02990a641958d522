"""A tiny levelled logger on print(): no dependency on the `logging` module.

Usage: ``log = getLogger("mqtt"); log.info("connected in %d ms", ms)``. Arguments are
formatted only when the level is enabled, so a disabled debug call costs one comparison.
Never pass a secret (password, key, token) to a logger: nothing here can redact it.
"""

import sys

DEBUG = 10
INFO = 20
WARNING = 30
ERROR = 40
CRITICAL = 50

_NAMES = {DEBUG: "DEBUG", INFO: "INFO", WARNING: "WARNING", ERROR: "ERROR", CRITICAL: "CRITICAL"}

_level = INFO
_stream = None  # None means sys.stdout at the time of the call (tests may swap it)
_loggers = {}


def basicConfig(level=INFO, stream=None):
    global _level, _stream
    _level = level
    _stream = stream


def setLevel(level):
    global _level
    _level = level


def getLevel():
    return _level


class Logger:
    def __init__(self, name):
        self.name = name

    def isEnabledFor(self, level):
        return level >= _level

    def log(self, level, msg, *args):
        if level < _level:
            return
        if args:
            try:
                msg = msg % args
            except Exception:
                msg = "%s %r" % (msg, args)
        out = _stream or sys.stdout
        out.write("%s:%s:%s\n" % (_NAMES.get(level, level), self.name, msg))

    def debug(self, msg, *args):
        self.log(DEBUG, msg, *args)

    def info(self, msg, *args):
        self.log(INFO, msg, *args)

    def warning(self, msg, *args):
        self.log(WARNING, msg, *args)

    def error(self, msg, *args):
        self.log(ERROR, msg, *args)

    def exception(self, msg, *args):
        # Callers pass the exception text in args; a traceback would cost RAM on a board.
        self.log(ERROR, msg, *args)


def getLogger(name="tether"):
    lg = _loggers.get(name)
    if lg is None:
        lg = _loggers[name] = Logger(name)
    return lg
