"""A headless Chromium (Debian's package) driven by Playwright, and a real
``coffer serve`` process to point it at."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from playwright.sync_api import Browser, Page, sync_playwright

from tests.cli.support.helpers import CofferEnv

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def coffer_serve(env: CofferEnv, config: Path, port: int, **extra: str) -> Iterator[str]:
    """Run ``coffer serve`` until the block ends; then SIGTERM it and require a clean
    exit (the graceful shutdown). Yields the base URL."""
    proc = env.popen("serve", "--listen", f"127.0.0.1:{port}", COFFER_CONFIG=str(config), **extra)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"coffer serve exited {proc.returncode}: {proc.communicate()}")
            try:
                if requests.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("coffer serve did not start")
            time.sleep(0.2)
        try:
            yield url
        except BaseException:
            if proc.poll() is None:
                proc.send_signal(signal.SIGUSR1)  # its threads' stacks, into its log
                time.sleep(1)
            raise
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            _out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate()
            raise AssertionError(f"coffer serve ignored SIGTERM: {err}") from None
        print(_out, err)  # the server's log, shown when the test fails
    assert proc.returncode == 0, err


def shot(page: Page, directory: Path, name: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(directory / f"{name}.png"), full_page=True)


def sign_in(page: Page, url: str, user: str, password: str) -> None:
    page.goto(url + "/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
