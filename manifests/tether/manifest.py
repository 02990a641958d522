# ruff: noqa: F821  (metadata/package/module are defined by MicroPython's manifestfile)
# Tether's core: what every cloud needs (MQTT, the cloud-client base, session, store,
# credentials and TLS, the board HAL). A cloud's manifest requires it; docs/firmware.md,
# "Components". Adding a module to the core is one line below (tests/test_package.py
# fails while a module of lib/tether belongs to no component).
metadata(description="Tether core: MQTT, cloud-client base, session, store, TLS, board HAL")

package(
    "tether",
    files=(
        "__init__.py",
        "certs.py",
        "compat.py",
        "credentials.py",
        "creds.py",
        "der.py",
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
        "signer.py",
        "store.py",
        "store_diag.py",
        "store_format.py",
        "store_full.py",
        "tlsctx.py",
        # the board HAL; the fakes (tether-fakes) and hsm.py (CPython) are not here
        "hal/__init__.py",
        "hal/backoff.py",
        "hal/clock.py",
        "hal/network.py",
        "hal/se05x.py",
        "hal/station.py",
        "hal/watchdog.py",
        "hal/wifi_cyw43.py",
        "hal/wifi_esp32.py",
        "hal/wifi_nina.py",
    ),
    base_path="../../lib",
)
# The cloud-client base: every module of the folder.
package("tether/cloud", base_path="../../lib")
