"""The PNG chart renders traditional Mongolian script (issue 16): a name in Mongolian takes
its glyphs from Noto Sans Mongolian, the fallback after the CJK font, instead of the
missing-glyph box ("tofu"). Needs ``make fonts`` (fonts-noto-cjk, fonts-noto-core); without
the font the test FAILS with that hint, it does not skip."""

from __future__ import annotations

import io
import warnings
from typing import Any

import matplotlib
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from service.dashboard import png

HOHHOT_MN = "ᠬᠥᠬᠡᠬᠣᠲᠠ"  # Hohhot in traditional Mongolian script


def _chart(region_name: str) -> dict[str, Any]:
    return {"signal": "complaints", "region": "150100", "category": "fireworks",
            "region_name": region_name, "category_name": "烟花爆竹",
            "history": [{"week": "2024-01-01", "count": 3}, {"week": "2024-01-08", "count": 5}],
            "forecast": [], "peaks": [], "campaigns": []}


def _ink(text: str, families: list[str]) -> np.ndarray:
    """The text drawn alone (36 pt, 100 dpi) with these font families, as a boolean ink mask
    cropped to its bounding box."""
    with matplotlib.rc_context({"font.family": families}), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the missing-glyph box is drawn on purpose
        fig = Figure(figsize=(6, 1.2), dpi=100)
        FigureCanvasAgg(fig)
        fig.text(0.02, 0.3, text, fontsize=36)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    ink: np.ndarray = np.asarray(Image.open(buf).convert("L")) < 128
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    assert rows.size and cols.size, f"nothing drawn for {text!r}"
    crop: np.ndarray = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return crop


def _missing_glyph_warnings(chart: dict[str, Any]) -> tuple[list[str], bytes]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = png.render_forecast_png(chart, width=6, height=3)
    return [str(w.message) for w in caught if "missing from" in str(w.message)], data


def test_mongolian_names_render_with_real_glyphs(monkeypatch: pytest.MonkeyPatch) -> None:
    if png.mongolian_font() is None:
        pytest.fail("no Mongolian font: run `make fonts` (Debian fonts-noto-core has Noto "
                    "Sans Mongolian)")
    families = png.chart_fonts()
    assert families.index(str(png.mongolian_font())) == 1  # after the CJK font
    # the real chart: no glyph of the Mongolian name is missing from every font
    missing, data = _missing_glyph_warnings(_chart(f"{HOHHOT_MN} 呼和浩特市"))
    assert missing == []
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG" and image.size == (600, 300)
    # each letter, drawn with the chart's fonts, is its glyph and not the missing-glyph box
    # (what the chain draws without the Mongolian font: the same square for every letter)
    no_mn = [f for f in families if f != png.mongolian_font()]
    boxes = {_ink(letter, no_mn).shape for letter in HOHHOT_MN}
    assert len(boxes) == 1, boxes  # the reference really is one box
    box = boxes.pop()
    shapes = {_ink(letter, families).shape for letter in set(HOHHOT_MN)}
    assert box not in shapes and len(shapes) > 1, (box, shapes)
    # the word is shaped (joined forms): far narrower than a row of boxes
    word = _ink(HOHHOT_MN, families)
    tofu_row = _ink(HOHHOT_MN, no_mn)
    assert word.shape[1] < 0.6 * tofu_row.shape[1], (word.shape, tofu_row.shape)
    # the check can fail: without the Mongolian fallback the chart warns of missing glyphs
    monkeypatch.setattr(png, "chart_fonts", lambda: no_mn)
    missing, _ = _missing_glyph_warnings(_chart(f"{HOHHOT_MN} 呼和浩特市"))
    assert missing and "MONGOLIAN" in missing[0].upper()
