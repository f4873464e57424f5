"""A run's report.html in a real browser (headless Chromium): every embedded image decodes and has a size.

Needs a Chromium binary (Debian: ``apt-get install chromium``, which .ci/run does); skipped, saying so, where there is
none, except in CI, where a missing browser is an error.
The page itself has no script: the test renders a copy with a small one added that records, once the page has
loaded, each image's natural size, and reads it back from the DOM Chromium dumps.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import autoencoders
from autoencoders.report import write_report

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
BROWSER = next((path for path in map(shutil.which, BROWSERS) if path), None)
if BROWSER is None and os.environ.get("CI"):  # .ci/run installs Chromium: a skip there would hide a broken install
    raise RuntimeError("CI runs the browser test, but no Chromium binary was found; .ci/run installs the Debian package")
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no Chromium binary found (install the Debian package `chromium` to run this test)"
)

# appended to a copy of the page: after load, one record per <img> in a <pre id="image-check">
IMAGE_CHECK = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images).map((image) => ({
    alt: image.alt, complete: image.complete, width: image.naturalWidth, height: image.naturalHeight,
  }));
  const out = document.createElement("pre");
  out.id = "image-check";
  out.textContent = JSON.stringify(images);
  document.body.appendChild(out);
});
</script>"""
BROKEN_PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB"  # a PNG cut short after its header


def rendered_images(page: Path, scratch: Path) -> list[dict]:
    """The images of ``page`` as Chromium decoded them: alt text, natural width and height."""
    probe = scratch / f"probe-{page.stem}.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", IMAGE_CHECK + "</body>"), encoding="utf-8")
    dom = subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         f"--user-data-dir={scratch / 'profile'}", "--virtual-time-budget=20000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout
    found = re.search(r'<pre id="image-check">(.*?)</pre>', dom, re.S)
    assert found, f"the page did not finish loading in Chromium; it printed: {dom[:500]!r}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model on a shared machine
    try:
        run = autoencoders.train("vae", "digits", tmp_path_factory.mktemp("browser") / "vae", latent_dim=4,
                                 max_steps=30, progress=False, settings={"training.log_every": 5})
        autoencoders.evaluate(run, metrics=["mse", "psnr"])
        return write_report(run)
    finally:
        torch.set_num_threads(threads)


def test_every_image_of_the_report_loads(report, tmp_path):
    images = rendered_images(report, tmp_path)
    assert len(images) == report.read_text().count("<img") >= 5  # loss, reconstructions, samples, ...
    for image in images:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image


def test_a_broken_image_is_caught(report, tmp_path):
    page = report.read_text()
    first = re.search(r'src="(data:image/png;base64,[^"]*)"', page).group(1)
    broken = tmp_path / "broken.html"
    broken.write_text(page.replace(first, BROKEN_PNG, 1))
    widths = [image["width"] for image in rendered_images(broken, tmp_path)]
    assert widths[0] == 0 and all(width > 0 for width in widths[1:])
