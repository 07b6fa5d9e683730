"""``forecast.png``: a report chart of one series, drawn with matplotlib's Agg backend.

Chinese labels need a CJK-capable font. :func:`cjk_font` looks for one known to matplotlib,
then among the system's font files (Debian: ``fonts-noto-cjk``, ``fonts-wqy-zenhei``); with
none, the chart falls back to the English names so no glyph goes missing. Names in
traditional Mongolian script (a region or category named in Mongolian) take their glyphs from
:func:`mongolian_font` (Debian ``fonts-noto-core``: Noto Sans Mongolian), the fallback after
the CJK font (:func:`chart_fonts`).
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import threading
from collections.abc import Mapping
from typing import Any

from service.campaigns.status import STATUS_ZH

__all__ = ["chart_fonts", "cjk_font", "mongolian_font", "render_forecast_png"]

_KNOWN = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN",
          "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Noto Serif CJK SC", "SimHei",
          "Microsoft YaHei", "PingFang SC", "AR PL UMing CN", "Droid Sans Fallback")
_FILE_HINTS = ("notosanscjk", "notoserifcjk", "sourcehansans", "wqy", "simhei", "msyh",
               "droidsansfallback", "uming", "ukai")
#: traditional Mongolian script (Debian ``fonts-noto-core``; Windows' Mongolian Baiti)
_MONGOLIAN_KNOWN = ("Noto Sans Mongolian", "Mongolian Baiti")
_MONGOLIAN_HINTS = ("notosansmongolian", "monbaiti")
_LOCK = threading.Lock()  # rc_context changes global rcParams: one rendering at a time


def _find_font(known: tuple[str, ...], hints: tuple[str, ...]) -> str | None:
    """Family name of the first ``known`` font matplotlib has, else of the first system font
    file whose name contains one of ``hints`` (registered with matplotlib)."""
    from matplotlib import font_manager as fm

    have = {f.name for f in fm.fontManager.ttflist}
    for name in known:
        if name in have:
            return name
    files = sorted(p for p in fm.findSystemFonts()
                   if any(h in p.lower().replace("-", "").replace("_", "") for h in hints))
    # prefer sans regular faces
    files.sort(key=lambda p: ("sans" not in p.lower(), "bold" in p.lower(), p))
    for path in files:
        try:
            fm.fontManager.addfont(path)
            return str(fm.FontProperties(fname=path).get_name())
        except (OSError, RuntimeError, ValueError):
            continue
    return None


@functools.lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """Family name of a font that renders Chinese, registering a system file if needed."""
    return _find_font(_KNOWN, _FILE_HINTS)


@functools.lru_cache(maxsize=1)
def mongolian_font() -> str | None:
    """Family name of a font that renders traditional Mongolian script (``make fonts``)."""
    return _find_font(_MONGOLIAN_KNOWN, _MONGOLIAN_HINTS)


def chart_fonts() -> list[str]:
    """The chart's font families in fallback order: CJK, Mongolian, then DejaVu Sans (Latin,
    digits). matplotlib takes each glyph from the first family that has it and shapes the
    text (libraqm), so Chinese, Mongolian (joined letter forms) and Latin mix in one label."""
    return [f for f in (cjk_font(), mongolian_font()) if f] + ["DejaVu Sans"]


def _d(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


_SIGNAL_ZH = {"complaints": "投诉", "violations": "违法行为"}


def render_forecast_png(chart: Mapping[str, Any], *, width: float = 10.0,
                        height: float = 6.0, dpi: int = 100) -> bytes:
    """PNG of :func:`service.evaluation.series_chart` output: weekly history, forecast with
    its 80 % band and the spike threshold (top), weekly P(spike) bars (bottom), predicted
    peak windows shaded, campaigns marked at their send dates with their status. The time
    axis spans the series' own data (its history and forecast), not the whole data set."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    font = cjk_font()
    zh = font is not None
    title, labels = _texts(chart, zh=zh)
    rc: Any = {"axes.unicode_minus": False, "font.family": chart_fonts()}
    with _LOCK, matplotlib.rc_context(rc):
        fig = Figure(figsize=(width, height), dpi=dpi)
        FigureCanvasAgg(fig)
        ax, axp = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        hist = chart.get("history") or []
        fc = chart.get("forecast") or []
        if hist:  # a week the series' sources do not cover (count None) breaks the line
            ax.plot([_d(h["week"]) for h in hist],
                    [float("nan") if h["count"] is None else h["count"] for h in hist],
                    color="#333333", lw=1.2, label=labels["hist"])
        if fc:
            weeks = [_d(f["week"]) for f in fc]
            ax.fill_between(weeks, [f["lower_80"] for f in fc], [f["upper_80"] for f in fc],
                            color="#1f77b4", alpha=0.25, lw=0, label=labels["band"])
            ax.plot(weeks, [f["expected"] for f in fc], color="#1f77b4", lw=1.6,
                    label=labels["fc"])
            axp.bar(weeks, [f["p_spike"] for f in fc], width=6, color="#d62728", alpha=0.7,
                    label=labels["p"])
        _marks(ax, axp, chart, labels, zh=zh)
        ax.set_title(title)
        ax.set_ylabel(labels["count"])
        ax.set_ylim(bottom=0)
        axp.set_ylabel(labels["p"])
        axp.set_ylim(0, 1)
        ax.legend(loc="upper left", fontsize=8, ncols=3)
        fig.autofmt_xdate()
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    return buf.getvalue()


def _texts(chart: Mapping[str, Any], *, zh: bool) -> tuple[str, dict[str, str]]:
    """The chart's title and labels, in Chinese when a CJK font is installed."""
    if zh:
        signal_zh = _SIGNAL_ZH.get(chart["signal"], chart["signal"])
        return (f"{chart['region_name']} · {chart['category_name']}（{signal_zh}）",
                {"hist": "实际（周）", "fc": "预测（周）", "band": "80% 区间", "thr": "高发阈值",
                 "p": "高发概率", "peak": "预测高发期", "count": "件数/周", "send": "提示"})
    return (f"{chart.get('region_name_en') or chart['region']} · "
            f"{chart.get('category_name_en') or chart['category']} ({chart['signal']})",
            {"hist": "actual (weekly)", "fc": "forecast (weekly)", "band": "80% interval",
             "thr": "spike threshold", "p": "P(spike)", "peak": "predicted peak",
             "count": "count / week", "send": "reminder"})


def _marks(ax: Any, axp: Any, chart: Mapping[str, Any], labels: Mapping[str, str], *,
           zh: bool) -> None:
    """The spike threshold, the run's decision threshold (and the level a window opens at),
    the predicted peak windows and the campaigns (but cancelled and superseded ones)."""
    if chart.get("threshold") is not None:
        ax.axhline(float(chart["threshold"]), color="#d62728", ls="--", lw=1,
                   label=labels["thr"])
    if chart.get("decision"):  # the run's decision threshold on the P(spike) panel
        axp.axhline(float(chart["decision"]["threshold"]), color="#6a1b9a", ls=":", lw=1.2)
        opens = chart["decision"].get("opens_at")
        if opens is not None and opens > chart["decision"]["threshold"]:
            axp.axhline(float(opens), color="#6a1b9a", ls="--", lw=0.9)  # where windows open
    for i, p in enumerate(chart.get("peaks") or []):
        for a in (ax, axp):
            a.axvspan(_d(p["start"]), _d(p["end"]), color="#ff7f0e", alpha=0.15,
                      label=labels["peak"] if (i == 0 and a is ax) else None)
    for c in chart.get("campaigns") or []:
        if c["status"] in ("cancelled", "superseded"):
            continue
        status = STATUS_ZH.get(c["status"], c["status"]) if zh else c["status"]
        start, end = _d(c["window_start"]), _d(c["window_end"]) + dt.timedelta(days=1)
        ax.axvspan(start, end, ymin=0, ymax=0.95, fill=False, ec="#2ca02c", lw=1.2)
        ax.annotate(f"{labels['send']} {_d(c['send_date']):%m-%d} · {status}", (start, 0.96),
                    xycoords=("data", "axes fraction"), va="bottom", ha="left",
                    fontsize=7, color="#2ca02c")
