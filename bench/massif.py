"""Valgrind massif output -> the process's malloc peak and mbedTLS's share of it."""

import re

# A stack frame inside mbedTLS (or MicroPython's binding to it): by function name or by
# the mbedTLS source file it is in (its static helpers have no mbedtls_ prefix).
_MBEDTLS_FRAME = re.compile(
    r": mbedtls_\w+ \(|\((ssl_\w+|x509\w*|bignum\w*|ecp\w*|ecdh|ecdsa|pk\w*|md|entropy\w*"
    r"|cipher\w*|ctr_drbg|hmac_drbg|gcm|aes\w*|asn1\w*|oid|rsa\w*|psa_\w+|pem|base64|sha\d*"
    r"|chacha\w*|poly1305|ccm|platform\w*|modtls_mbedtls)\.c:\d+\)"
)


def parse_massif(text):
    """{"peak": bytes, "mbedtls_peak": bytes} from a massif output file.

    peak: the largest heap total over all snapshots (malloc'd bytes, the GC heap and, here,
    the CPython process that hosts the unix port included). mbedtls_peak: in each detailed
    snapshot, the live bytes whose allocating function is in mbedTLS (_MBEDTLS_FRAME; the
    outermost such frame of each tree), maximised over snapshots.
    """
    peak = 0
    mbed_peak = 0
    for snap in text.split("#-----------\nsnapshot=")[1:]:
        m = re.search(r"mem_heap_B=(\d+)", snap)
        if m:
            peak = max(peak, int(m.group(1)))
        if "heap_tree=empty" in snap:
            continue
        total = 0
        skip_deeper = None
        for line in snap.splitlines():
            m = re.match(r"^( *)n\d+: (\d+) (.*)$", line)
            if not m:
                continue
            depth = len(m.group(1))
            if skip_deeper is not None and depth > skip_deeper:
                continue
            skip_deeper = None
            if _MBEDTLS_FRAME.search(m.group(3)):
                total += int(m.group(2))
                skip_deeper = depth
        mbed_peak = max(mbed_peak, total)
    return {"peak": peak, "mbedtls_peak": mbed_peak}
