"""Reminder content: Jinja2 templates per category and channel, rendered in a sandbox.

Template lookup for channel ``ch`` (first found wins): the campaign's own ``ch`` override, the
category's ``templates[ch]``, the campaign's ``default`` override, the category's
``templates['default']``, then :data:`BUILTIN_TEMPLATE`.

Variables available to templates (all plain values, nothing personal):
``category`` (code, name_zh, name_en, sector, lead_days, legal_basis, requirements, advice),
``region`` (code, name_zh, name_en), ``window_start``, ``window_end``, ``send_date`` (Chinese
dates such as ``2025年1月6日``; ``*_iso`` variants in ISO form), ``expected_count`` and
``probability`` (None for a manual campaign without forecast), ``legal_basis`` (list of
``{title, articles}``), ``evidence`` and ``why_now`` (the forecast in plain words), ``channel``,
``title``.

Rendering uses a :class:`jinja2.sandbox.SandboxedEnvironment` with ``StrictUndefined`` and no
autoescaping (the output is plain text); any template error becomes a 422 problem naming the
category and the template.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from service.campaigns.planning import fmt_date
from service.campaigns.tables import Campaign
from service.errors import UnprocessableContent
from service.store.tables import Category, Region

__all__ = [
    "BUILTIN_TEMPLATE",
    "RenderedMessage",
    "template_context",
    "select_template",
    "render_text",
    "render_campaign",
    "evidence_sentence",
    "why_now_sentence",
    "SIGNAL_WORDS",
    "template_languages",
    "render_variants",
    "LANGUAGE_TAGS",
]

#: BCP 47 tags of the reminder languages (``mn``: Mongolian in the traditional script)
LANGUAGE_TAGS = {"zh": "zh-CN", "mn": "mn-Mong"}

SIGNAL_WORDS = {"complaints": "投诉", "violations": "违法行为"}

BUILTIN_TEMPLATE = """\
【执法事项提示】{{ region.name_zh }}·{{ category.name_zh }}
发布日期：{{ send_date }}

{{ evidence }}{{ why_now }}

一、法律依据
{% for item in legal_basis %}{{ loop.index }}. {{ item.title }}\
{% if item.articles %}{{ item.articles }}{% endif %}
{% endfor %}
{% if category.requirements %}二、监管要求
{{ category.requirements }}

{% endif %}{% if category.advice %}三、提示建议
{{ category.advice }}

{% endif %}\
本提示属于行政指导，旨在宣传解释法律、提示风险，不设定新的义务，不收取任何费用，\
也不替代依法应当作出的处理。如有疑问，可拨打12345政务服务便民热线咨询。
"""

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False,
                            keep_trailing_newline=True)


@dataclass(frozen=True)
class RenderedMessage:
    """One channel's message: ``subject`` (title) and ``body`` (Chinese); ``template`` names
    its source; ``texts`` every language variant (:func:`render_variants`, ``zh`` first)."""

    channel: str
    subject: str
    body: str
    template: str
    frozen: bool = False
    texts: tuple[dict[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The stored form (``frozen_content[channel]`` at approval: every language)."""
        return {"channel": self.channel, "subject": self.subject, "body": self.body,
                "template": self.template, "texts": [dict(t) for t in self.texts]}


def template_languages(category: Category) -> list[str]:
    """``zh`` (the main templates) and the category's language variants
    (``templates.languages``: ``mn``, …), in that order."""
    variants = (category.templates or {}).get("languages")
    extra = sorted(str(k) for k in variants) if isinstance(variants, dict) else []
    return ["zh", *(k for k in extra if k != "zh")]


def render_variants(*, campaign: Campaign, category: Category, region: Region,
                    channel: str, main: RenderedMessage | None = None) -> list[dict[str, Any]]:
    """Every language variant of ``channel``'s message: ``zh`` (the main message) first, then
    each variant of ``category.templates.languages`` (its ``channel`` template, else its
    ``default``), each ``{language, tag, status, note, subject, body}``. ``status`` is
    ``official`` or ``placeholder`` (a text awaiting an official translation: shown, never
    passed off as official). Rendered now; the copy frozen at approval is
    :attr:`RenderedMessage.texts` of :func:`service.campaigns.service.render_message`."""
    if main is None:
        return list(render_campaign(campaign=campaign, category=category, region=region,
                                    channel=channel).texts)
    context = template_context(campaign=campaign, category=category, region=region,
                               channel=channel)
    return _variants(category, context, channel, subject=main.subject, body=main.body)


def _variants(category: Category, context: dict[str, Any], channel: str, *, subject: str,
              body: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"language": "zh", "tag": LANGUAGE_TAGS["zh"],
                                  "status": "official", "note": None,
                                  "subject": subject, "body": body}]
    variants = (category.templates or {}).get("languages")
    if not isinstance(variants, dict):
        return out
    for lang in template_languages(category)[1:]:
        spec = variants[lang] if isinstance(variants[lang], dict) else {}
        source = spec.get(channel) or spec.get("default")
        if not isinstance(source, str) or not source.strip():
            continue
        name = f"{category.code}:{lang}:{channel if spec.get(channel) else 'default'}"
        text = render_text(source, context, category=category.code, template=name)
        title = spec.get("title")
        lang_subject = (render_text(title, context, category=category.code,
                                    template=f"{category.code}:{lang}:title")
                        if isinstance(title, str) else subject)
        status = "official" if spec.get("status") == "official" else "placeholder"
        out.append({"language": lang, "tag": str(spec.get("tag") or LANGUAGE_TAGS.get(lang,
                                                                                     lang)),
                    "status": status, "note": spec.get("note"),
                    "subject": lang_subject.strip(), "body": text.strip() + "\n"})
    return out


def _signals(campaign: Campaign) -> list[str]:
    seen: list[str] = []
    for p in campaign.evidence or []:
        sig = p.get("signal") if isinstance(p, dict) else None
        if sig in SIGNAL_WORDS and sig not in seen:
            seen.append(sig)
    if not seen and campaign.signal in SIGNAL_WORDS:
        seen.append(campaign.signal)
    return seen


def evidence_sentence(campaign: Campaign, category: Category, region: Region) -> str:
    """The forecast in plain words: expected period, what increases, how likely."""
    period = f"{fmt_date(campaign.window_start)}至{fmt_date(campaign.window_end)}"
    words = "和".join(SIGNAL_WORDS[s] for s in _signals(campaign)) or "问题"
    what = f"{region.name_zh}“{category.name_zh}”类{words}"
    if campaign.probability is None:
        return f"预计{period}期间，{what}可能多发。"
    extra = [f"概率约{round(campaign.probability * 100)}%"]
    if campaign.expected_count is not None:
        extra.append(f"预计约{round(campaign.expected_count)}件")
    if campaign.expected_excess:
        extra.append(f"比通常水平多约{round(campaign.expected_excess)}件")
    return f"预计{period}期间，{what}将明显增多（{'，'.join(extra)}）。"


def why_now_sentence(campaign: Campaign) -> str:
    """Why the reminder goes out on its send date."""
    days = (campaign.window_start - campaign.send_date).days
    if days < 0:
        return "预计的多发期已经开始，请立即对照下列要求自查自纠。"
    if days < campaign.lead_days:
        return f"距预计多发期开始仅剩{days}天，请尽早对照下列要求自查自纠。"
    return (f"距预计多发期开始还有{days}天，现在提示，便于大家提前了解法律规定、"
            "做好准备，避免违法。")


def template_context(*, campaign: Campaign, category: Category, region: Region,
                     channel: str) -> dict[str, Any]:
    """The variables a template sees (see the module docstring)."""
    legal_basis = [
        {"title": str(item.get("title", "")), "articles": item.get("articles")}
        if isinstance(item, dict) else {"title": str(item), "articles": None}
        for item in (category.legal_basis or [])
    ]
    return {
        "category": {"code": category.code, "name_zh": category.name_zh,
                     "name_en": category.name_en, "sector": category.sector,
                     "lead_days": campaign.lead_days, "legal_basis": legal_basis,
                     "requirements": category.requirements, "advice": category.advice},
        "region": {"code": region.code, "name_zh": region.name_zh, "name_en": region.name_en},
        "window_start": fmt_date(campaign.window_start),
        "window_end": fmt_date(campaign.window_end),
        "send_date": fmt_date(campaign.send_date),
        "window_start_iso": campaign.window_start.isoformat(),
        "window_end_iso": campaign.window_end.isoformat(),
        "send_date_iso": campaign.send_date.isoformat(),
        "expected_count": campaign.expected_count,
        "probability": campaign.probability,
        "legal_basis": legal_basis,
        "evidence": evidence_sentence(campaign, category, region),
        "why_now": why_now_sentence(campaign),
        "channel": channel,
        "title": campaign.title,
    }


def select_template(*, campaign: Campaign, category: Category,
                    channel: str) -> tuple[str, str]:
    """``(name, source)`` of the template used for ``channel``."""
    overrides = campaign.content_overrides or {}
    templates = category.templates or {}
    for name, source in ((f"campaign:{channel}", overrides.get(channel)),
                         (f"{category.code}:{channel}", templates.get(channel)),
                         ("campaign:default", overrides.get("default")),
                         (f"{category.code}:default", templates.get("default"))):
        if isinstance(source, str) and source.strip():
            return name, source
    return "builtin:default", BUILTIN_TEMPLATE


def render_text(source: str, context: dict[str, Any], *, category: str, template: str) -> str:
    """Render ``source`` in the sandbox; errors become 422 naming category and template."""
    try:
        return _ENV.from_string(source).render(context)
    except jinja2.TemplateError as exc:
        kind = type(exc).__name__
        raise UnprocessableContent(
            f"template '{template}' of category '{category}' cannot be rendered: "
            f"{kind}: {exc}", category=category, template=template) from exc


def render_campaign(*, campaign: Campaign, category: Category, region: Region,
                    channel: str) -> RenderedMessage:
    """Render ``channel``'s message of ``campaign`` now, in every language of its category
    (ignores any frozen copy)."""
    name, source = select_template(campaign=campaign, category=category, channel=channel)
    context = template_context(campaign=campaign, category=category, region=region,
                               channel=channel)
    body = render_text(source, context, category=category.code, template=name).strip() + "\n"
    texts = _variants(category, context, channel, subject=campaign.title, body=body)
    return RenderedMessage(channel=channel, subject=campaign.title, body=body, template=name,
                           texts=tuple(texts))
