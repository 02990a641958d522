"""The dashboard in a real browser (Debian chromium + chromedriver, driven by selenium):
the real firmware runs the demo app on the unix port against the emulator; flipping the LED
switch in the page must reach the app's on_write on the device."""

import shutil
import time
from pathlib import Path

import pytest
from cloudsim_fixtures import cloudsim  # noqa: F401
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tools.cloudsim.board import BoardProcess, write_board_dir

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
DEVICE = "5e1ec7ed-0000-4000-8000-00000000d340"


def _browser(profile_dir):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--user-data-dir=%s" % profile_dir,
    ):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)


@pytest.fixture
def browser(tmp_path):
    driver = _browser(tmp_path / "chromium-profile")
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def board(cloudsim, tmp_path):  # noqa: F811
    dev = cloudsim.add_device(DEVICE, secret="demo-secret")
    # The thing's LED variable exists in the cloud (as created in the cloud UI).
    cloudsim.set_values(dev.thing_id, {"led": False})
    settings = write_board_dir(cloudsim, DEVICE, tmp_path / "board")
    proc = BoardProcess(settings, app_paths=[ROOT / "examples" / "demo"])
    try:
        proc.wait_line("demo: app ready", timeout=20)
        cloudsim.wait_connected(DEVICE, timeout=20)
        cloudsim.wait_for_value(dev.thing_id, "temperature", timeout=20)
        yield dev, proc
    finally:
        proc.stop()


def test_switch_in_the_page_reaches_on_write(cloudsim, board, browser, tmp_path):  # noqa: F811
    dev, proc = board
    # a little history for the plot
    for i, v in enumerate((20.5, 21.5, 21.0)):
        cloudsim.set_values(dev.thing_id, {"temperature": v})
        time.sleep(0.01 * (i + 1))
    browser.get(cloudsim.dashboard_url)
    wait = WebDriverWait(browser, 15)
    card = '[data-device="%s"]' % DEVICE
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, card + '[data-connected="1"]')))
    switch = wait.until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, card + ' [data-switch="led"]'))
    )
    checkbox = browser.find_element(By.CSS_SELECTOR, card + ' input[data-var="led"]')
    assert not checkbox.is_selected()
    # the live value and the history plot are on the page
    value = browser.find_element(By.CSS_SELECTOR, card + ' [data-value="temperature"]')
    wait.until(lambda d: value.text != "")
    assert 15.0 <= float(value.text) <= 30.0  # the simulated sensor's range
    points = browser.find_element(By.CSS_SELECTOR, card + ' [data-tile="temperature"] polyline')
    wait.until(lambda d: len(points.get_attribute("points").split()) >= 3)
    browser.save_screenshot(str(tmp_path / "dashboard.png"))

    mark = len(proc.lines)
    switch.click()
    proc.wait_line("demo: LED ON (written from the cloud)", timeout=10, start=mark)
    assert cloudsim.values(dev.thing_id)["led"] is True
    wait.until(lambda d: checkbox.is_selected())  # the page follows the stored value

    mark = len(proc.lines)
    switch.click()
    proc.wait_line("demo: LED OFF (written from the cloud)", timeout=10, start=mark)
    assert cloudsim.values(dev.thing_id)["led"] is False


def _set_input(browser, element, value):
    # Colour pickers and sliders have no keyboard path selenium can drive: set the value the
    # way the browser's own widget would, then fire the same change event.
    browser.execute_script(
        "arguments[0].value = arguments[1];"
        "arguments[0].dispatchEvent(new Event('change', {bubbles: true}));",
        element,
        value,
    )


def test_color_slider_and_knob_widgets(cloudsim, browser):  # noqa: F811
    dev = cloudsim.add_device("dev-widgets", secret="x")
    cloudsim.set_values(
        dev.thing_id,
        {"light": {"swi": True, "hue": 0.0, "sat": 100.0, "bri": 100.0}, "level": 10},
    )
    browser.get(cloudsim.dashboard_url)
    wait = WebDriverWait(browser, 15)
    card = '[data-device="dev-widgets"]'
    picker = wait.until(
        ec.presence_of_element_located((By.CSS_SELECTOR, card + ' input[data-color="light"]'))
    )
    assert picker.get_attribute("value") == "#ff0000"  # hue 0, full saturation/brightness
    _set_input(browser, picker, "#00ff00")
    cloudsim.wait_for_value(dev.thing_id, "light:hue", 120.0, timeout=5)
    values = cloudsim.values(dev.thing_id)
    assert (values["light:sat"], values["light:bri"], values["light:swi"]) == (100.0, 100.0, True)
    slider = browser.find_element(By.CSS_SELECTOR, card + ' input[type=range][data-var="level"]')
    _set_input(browser, slider, "42")
    assert cloudsim.wait_for_value(dev.thing_id, "level", 42, timeout=5) == 42
    # the knobs panel drives the emulator
    knob = browser.find_element(By.CSS_SELECTOR, 'input[data-knob="mute"][value="last_values"]')
    knob.click()
    deadline = time.monotonic() + 5
    while "last_values" not in cloudsim.knobs.mute and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cloudsim.knobs.mute == {"last_values"}


def test_number_and_text_writes_from_the_page(cloudsim, browser):  # noqa: F811
    dev = cloudsim.add_device("dev-page", secret="x")
    cloudsim.set_values(dev.thing_id, {"setpoint": 20, "label": "hall"})
    browser.get(cloudsim.dashboard_url)
    wait = WebDriverWait(browser, 15)
    card = '[data-device="dev-page"]'
    box = wait.until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, card + ' input[data-input="setpoint"]'))
    )
    box.send_keys("23")
    box.find_element(By.XPATH, "following-sibling::button").click()
    cloudsim.wait_for_value(dev.thing_id, "setpoint", 23, timeout=5)
    text = browser.find_element(By.CSS_SELECTOR, card + ' input[data-input="label"]')
    text.send_keys("kitchen")
    text.find_element(By.XPATH, "following-sibling::button").click()
    assert cloudsim.wait_for_value(dev.thing_id, "label", "kitchen", timeout=5) == "kitchen"
    assert isinstance(cloudsim.values(dev.thing_id)["setpoint"], int)


def test_devices_of_every_cloud_are_listed_with_their_cloud(tmp_path, browser):
    from cloudsim_echo import EchoCloud

    from tools.cloudsim import CloudSim

    with CloudSim(tmp_path / "cs", clouds=["arduino", EchoCloud()]) as sim:
        sim.add_device("dev-a", secret="x")
        sim.clouds["echo"].add("dev-e", "pw")
        browser.get(sim.dashboard_url)
        wait = WebDriverWait(browser, 15)
        for cloud, device in (("arduino", "dev-a"), ("echo", "dev-e")):
            card = '[data-device="%s"][data-cloud="%s"]' % (device, cloud)
            tag = wait.until(
                ec.presence_of_element_located((By.CSS_SELECTOR, card + " [data-cloud-name]"))
            )
            assert tag.text == cloud
        # the echo cloud's reply kind is a knob like Arduino's
        knob = browser.find_element(By.CSS_SELECTOR, 'input[data-knob="mute"][value="echo"]')
        knob.click()
        deadline = time.monotonic() + 5
        while "echo" not in sim.knobs.mute and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sim.knobs.mute == {"echo"}
