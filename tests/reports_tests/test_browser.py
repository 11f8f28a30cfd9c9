"""The report in a real browser: headless Chromium loads every image and shows the headline table."""

import html
import json
import re
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Written into a copy of the page: after the load event, each image's load state as a body attribute,
# which --dump-dom then prints.
PROBE = """<script>
window.addEventListener("load", () => document.body.setAttribute("data-images", JSON.stringify(
  Array.from(document.images, img => [img.getAttribute("src"), img.complete, img.naturalWidth]))));
</script>"""


def chromium(*args, profile):
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--hide-scrollbars"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=True)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs Debian's chromium)")
def test_every_image_loads_and_the_headline_table_is_there(report, tmp_path):
    site = tmp_path / "site"
    shutil.copytree(report, site)
    page = (site / "index.html").read_text()
    (site / "probe.html").write_text(page.replace("</body>", PROBE + "</body>"))

    dom = chromium("--virtual-time-budget=10000", "--dump-dom", (site / "probe.html").as_uri(),
                   profile=tmp_path / "profile").stdout
    images = json.loads(html.unescape(re.search(r'data-images="([^"]*)"', dom).group(1)))
    assert len(images) == 13  # 2 cells x 6 figures (decisions, pareto, flops, modes, gates, curves), 1 partition
    assert [src for src, complete, width in images if not (complete and width > 0)] == []
    assert re.search(r'<table id="headline-table">.*?<tbody><tr>', dom, re.S)

    shot = report / "screenshot.png"
    chromium(f"--screenshot={shot}", "--window-size=1300,2600", (site / "index.html").as_uri(),
             profile=tmp_path / "profile")
    assert shot.stat().st_size > 50_000
