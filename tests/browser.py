"""A page opened in real headless Chromium (Debian's package) through the DevTools protocol: a screenshot
and everything the page logged (console messages, uncaught exceptions, resources that failed to load)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class PageVisit:
    png: bytes
    problems: list[str] = field(default_factory=list)  # console errors/warnings, exceptions, failed loads
    images: dict[str, int] = field(default_factory=dict)  # src -> natural width (0: not loaded)
    links: list[str] = field(default_factory=list)  # resolved href of every <a>


def visit(url: str, width: int = 1280, height: int = 900, timeout: float = 60.0) -> PageVisit:
    """Open ``url``, wait for it to load (images included), return a full-page screenshot and what it logged."""
    if CHROMIUM is None:
        raise RuntimeError("chromium is not installed (apt-get install -y chromium)")
    # Chromium's helpers (crashpad, zygote) may still write to the profile just after it is killed.
    with tempfile.TemporaryDirectory(prefix="nst-chromium-", ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                 "--remote-debugging-port=0", f"--user-data-dir={profile}",
                                 f"--window-size={width},{height}", "about:blank"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            ws_url = _devtools_url(proc)
            return asyncio.run(asyncio.wait_for(_drive(ws_url, url, width, height), timeout))
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the whole group: its helpers hold the profile open
            proc.wait()


def _devtools_url(proc: subprocess.Popen) -> str:
    for line in proc.stderr:
        m = re.search(r"DevTools listening on (ws://\S+)", line)
        if m:
            browser = m.group(1)
            port = re.search(r":(\d+)/", browser).group(1)
            import urllib.request

            targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list").read())
            return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
    raise RuntimeError("chromium exited before it opened its DevTools port")


async def _drive(ws_url: str, url: str, width: int, height: int) -> PageVisit:
    import websockets

    problems: list[str] = []
    async with websockets.connect(ws_url, max_size=None) as ws:
        counter = 0
        loaded = asyncio.Event()
        pending: dict[int, asyncio.Future] = {}

        async def reader() -> None:
            async for raw in ws:
                msg = json.loads(raw)
                if "id" in msg and msg["id"] in pending:
                    pending.pop(msg["id"]).set_result(msg)
                    continue
                method, params = msg.get("method"), msg.get("params", {})
                if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
                    problems.append(f"console.{params['type']}: " + " ".join(
                        str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
                elif method == "Runtime.exceptionThrown":
                    problems.append("exception: " + params["exceptionDetails"].get("text", ""))
                elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
                    e = params["entry"]
                    problems.append(f"log.{e['level']}: {e.get('text', '')} {e.get('url', '')}".strip())
                elif method == "Network.loadingFailed":
                    problems.append(f"load failed: {params.get('errorText')}")
                elif method == "Page.loadEventFired":
                    loaded.set()

        task = asyncio.create_task(reader())

        async def call(method: str, **params) -> dict:
            nonlocal counter
            counter += 1
            fut = asyncio.get_running_loop().create_future()
            pending[counter] = fut
            await ws.send(json.dumps({"id": counter, "method": method, "params": params}))
            reply = await fut
            if "error" in reply:
                raise RuntimeError(f"{method}: {reply['error']}")
            return reply.get("result", {})

        for domain in ("Page", "Runtime", "Log", "Network"):
            await call(f"{domain}.enable")
        await call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        await call("Page.navigate", url=url)
        await loaded.wait()
        # lazy images below the fold load once scrolled to; the screenshot is of the whole page
        await call("Runtime.evaluate", expression="document.querySelectorAll('img').forEach(i => i.loading='eager')")
        await call("Runtime.evaluate", awaitPromise=True, expression=(
            "Promise.all([...document.images].map(i => i.complete ? 0 :"
            " new Promise(r => {i.onload = i.onerror = r})))"))
        facts = await call("Runtime.evaluate", returnByValue=True, expression=(
            "({images: Object.fromEntries([...document.images].map(i => [i.getAttribute('src'), i.naturalWidth])),"
            " links: [...document.links].map(a => a.href), h: document.documentElement.scrollHeight})"))
        value = facts["result"]["value"]
        shot = await call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": width, "height": min(value["h"], 8000), "scale": 1})
        task.cancel()
    import base64

    return PageVisit(png=base64.b64decode(shot["data"]), problems=problems, images=value["images"],
                     links=value["links"])
