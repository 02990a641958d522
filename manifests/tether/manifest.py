# ruff: noqa: F821  (metadata/package/module are defined by MicroPython's manifestfile)
# Tether's core: what every cloud needs (MQTT, the cloud-client base, session, store,
# credentials providers and TLS contexts, the board HAL). A cloud's manifest requires it;
# docs/firmware.md, "Components". Certificate authentication (tether.creds, certs, der,
# signer, hal/se05x) is the tether-certauth component, tether-nocert its stand-in. Adding a
# module to the core is one line below (tests/test_package.py fails while a module of
# lib/tether belongs to no component).
metadata(description="Tether core: MQTT, cloud-client base, session, store, TLS, board HAL")
# The WiFi drivers (tether.hal.wifi_<kind>): a board's manifest names its own (board.json's
# "wifi"); the fake radio of the unix port drives the cyw43 one.
options.defaults(wifi=("esp32", "cyw43", "nina"))

package(
    "tether",
    files=(
        "__init__.py",
        "compat.py",
        "credentials.py",
        "errors.py",
        "log.py",
        "mqtt.py",
        "mqtt_reader.py",
        "mqtt_packet.py",
        "mqtt_stream.py",
        "mqtt_writer.py",
        "resolver.py",
        "session.py",
        "session_diag.py",
        "store.py",
        "store_diag.py",
        "store_format.py",
        "store_full.py",
        "tlsctx.py",
        # the board HAL; the fakes (tether-fakes), se05x (tether-certauth) and hsm.py
        # (CPython) are not here
        "hal/__init__.py",
        "hal/backoff.py",
        "hal/clock.py",
        "hal/network.py",
        "hal/station.py",
        "hal/watchdog.py",
    )
    + tuple("hal/wifi_%s.py" % kind for kind in options.wifi),
    base_path="../../lib",
    opt=3,
)
# The cloud-client base. Its request/response correlation (cloud/requests.py) is the block
# tether-requests: only the clouds that correlate replies (Azure) carry it.
package(
    "tether/cloud",
    files=(
        "__init__.py",
        "client.py",
        "connect.py",
        "outbox.py",
        "router.py",
        "scheduler.py",
        "sync.py",
        "tls.py",
    ),
    base_path="../../lib",
    opt=3,
)
