#!/usr/bin/env python3
"""The web page of `patchcore serve` in a real headless Chromium (Playwright, system browser).

Fits a bottle model with the real binary, serves it, opens the page, uploads a good and a
broken bottle image through the file input, and checks: both images are scored, the good one
is `normal` and the broken one `anomalous` at the model's threshold, each shows a drawn
heatmap overlay (a decoded 224x224 PNG), and moving the threshold slider re-colours the
verdicts in the page. Then SIGTERM stops the server, which must exit 0.

Usage (CI: .ci/run; needs `chromium` and `pip install playwright`):
    python crates/patchcore-serve/tests/browser_page.py --patchcore target/release/patchcore \
        --data ../shared/datasets/mvtec_ad_256 [--chromium /usr/bin/chromium] [--out DIR]
Exit status 0 on success; any failed check raises.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, proc, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited early with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server never became ready")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--patchcore", required=True)
    ap.add_argument("--data", required=True, help="folder holding the bottle category")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--out", default=None, help="where to keep the model and a screenshot")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    out = args.out or tempfile.mkdtemp(prefix="patchcore-browser-")
    models = os.path.join(out, "models")
    os.makedirs(models, exist_ok=True)
    bottle = os.path.join(args.data, "bottle")
    good = os.path.join(bottle, "test", "good", "000.png")
    broken = os.path.join(bottle, "test", "broken_large", "000.png")
    for p in (good, broken):
        if not os.path.isfile(p):
            raise SystemExit(f"missing test image {p} (is the shared data set there?)")
    model = os.path.join(models, "bottle.patchcore")
    if not os.path.isfile(model):
        subprocess.run([args.patchcore, "fit", "--data-root", args.data, "--category", "bottle",
                        "--model", model, "--quiet"], check=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([args.patchcore, "serve", "--models", models, "--bind", f"127.0.0.1:{port}"])
    try:
        wait_ready(url, server)
        with urllib.request.urlopen(url + "/v1/models") as r:
            threshold = json.load(r)["models"][0]["threshold"]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "/")
            page.wait_for_function("document.querySelectorAll('#model option').length === 1")
            assert page.input_value("#model") == "bottle"
            page.set_input_files("#files", [good, broken])
            # Both answers arrived: two drawn heatmaps (a pending image has none and no verdict).
            page.wait_for_function(
                """() => Array.from(document.querySelectorAll('#results figure img[data-heatmap=drawn]'))
                        .filter(i => i.complete && i.naturalWidth > 0).length === 2""",
                timeout=60000)
            assert page.evaluate("document.querySelectorAll('#results figure.failed').length") == 0
            figures = page.evaluate("""() => Array.from(document.querySelectorAll('#results figure')).map(f => ({
                name: f.querySelector('.name').textContent,
                cls: f.className,
                verdict: f.querySelector('.verdict').textContent,
                drawn: f.querySelector('img').dataset.heatmap === 'drawn',
                width: f.querySelector('img').naturalWidth,
                height: f.querySelector('img').naturalHeight,
            }))""")
            # Both files are named 000.png: tell them apart by their verdicts.
            verdicts = sorted(f["verdict"] for f in figures)
            assert verdicts == ["anomalous", "normal"], figures
            for f in figures:
                assert f["drawn"] and f["width"] == 224 and f["height"] == 224, f
                assert f["cls"] == f["verdict"], f
            # The heatmap has colour: not a blank image.
            varied = page.evaluate("""() => {
                const img = document.querySelector('#results figure img');
                const c = document.createElement('canvas'); c.width = 224; c.height = 224;
                const g = c.getContext('2d'); g.drawImage(img, 0, 0);
                const d = g.getImageData(0, 0, 224, 224).data;
                let lo = 255, hi = 0;
                for (let i = 0; i < d.length; i += 4) { lo = Math.min(lo, d[i]); hi = Math.max(hi, d[i]); }
                return hi - lo;
            }""")
            assert varied > 50, f"the heatmap looks blank (red channel range {varied})"
            # The slider re-colours client-side: far above every score, both are normal.
            page.evaluate("""() => { const s = document.getElementById('threshold');
                s.value = s.max; s.dispatchEvent(new Event('input')); }""")
            assert page.evaluate("document.querySelectorAll('#results figure.anomalous').length") == 0
            page.evaluate(f"""() => {{ const s = document.getElementById('threshold');
                s.value = {threshold}; s.dispatchEvent(new Event('input')); }}""")
            assert page.evaluate("document.querySelectorAll('#results figure.anomalous').length") == 1
            page.screenshot(path=os.path.join(out, "page.png"), full_page=True)
            assert not errors, errors
            browser.close()
        print(f"browser check passed: {figures}; screenshot {os.path.join(out, 'page.png')}")
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
    if code != 0:
        raise SystemExit(f"the server exited with status {code} after SIGTERM")


if __name__ == "__main__":
    main()
