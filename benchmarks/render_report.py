"""Render an `s2c report` HTML file in headless Chromium and save a screenshot (a check by hand).

The report must render with no network and no script: Chromium runs with networking features
off, a fresh profile in a temporary folder, and takes a full-width screenshot. The script fails
when Chromium is missing, exits with an error, or writes no PNG; look at the PNG to judge the page.

    apt-get install chromium                      # Debian; once
    s2c report model.bin -o report.html
    python benchmarks/render_report.py report.html report.png [--height 3000]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def render(html: Path, png: Path, width: int, height: int) -> None:
    """Screenshot `html` into `png` at width x height pixels; SystemExit on any failure."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("chromium not found: install it (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="s2c-chromium-") as profile:
        command = [
            browser,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={png.resolve()}",
            html.resolve().as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        sys.exit(f"chromium exited with {done.returncode}: {done.stderr.strip()[-500:]}")
    if not png.exists() or png.read_bytes()[:8] != PNG_MAGIC:
        sys.exit(f"chromium wrote no PNG at {png}")
    print(f"rendered {html} -> {png} ({png.stat().st_size} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=3000)
    arguments = parser.parse_args()
    render(arguments.html, arguments.png, arguments.width, arguments.height)


if __name__ == "__main__":
    main()
