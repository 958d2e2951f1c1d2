"""Regenerate the README figures in docs/ by running the notebooks (about 3 minutes on 2 cores).

    .venv/bin/python docs/make_figures.py

Each notebook runs in a fresh kernel with DEEPPOT_NB_OUT set to a temporary folder; the figure
it saves there is copied here as a palette PNG (kept well under 300 KB).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import nbclient
import nbformat
from PIL import Image

DOCS = Path(__file__).resolve().parent
NOTEBOOKS = DOCS.parent / "notebooks"

# notebook -> (figure it writes, relative to DEEPPOT_NB_OUT; name in docs/)
FIGURES = {
    "01_plummer_paper_demo": ("01_plummer/plummer_fig3.png", "plummer_fig3.png"),
    "02_orbits_in_learned_potential": ("02_orbits/orbits.png", "orbits.png"),
    "03_gaia_like_catalog": ("03_gaia/gaia_catalog.png", "gaia_catalog.png"),
}
MAX_BYTES = 300_000


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="deeppot_docs_") as tmp:
        os.environ["DEEPPOT_NB_OUT"] = tmp
        for name, (produced, target) in FIGURES.items():
            print(f"running {name} ...", flush=True)
            nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
            nbclient.NotebookClient(
                nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp}}
            ).execute()
            image = Image.open(Path(tmp) / produced).convert("RGB")
            out = DOCS / target
            image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
            size = out.stat().st_size
            print(f"  -> {out.relative_to(DOCS.parent)} ({size / 1000:.0f} KB)")
            if size > MAX_BYTES:
                print(f"  {out.name} is over {MAX_BYTES // 1000} KB", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
