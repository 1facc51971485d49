"""``{% bar_chart series label %}``: a stacked bar chart as inline SVG, drawn on the server.

No JavaScript and no chart library: the SVG is markup (the CSP allows it), colours come from the
``chart-s0``… classes in console.css, and every chart is followed by the same numbers as a table.
"""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html, format_html_join

register = template.Library()

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM = 600, 160, 36, 18


def _when(moment, fmt: str) -> str:
    """A bar's date, with the time when bars are moments (a directory's sync runs), not days."""
    if isinstance(moment, datetime):
        return f"{timezone.localtime(moment) if timezone.is_aware(moment) else moment:{fmt} %H:%M}"
    return f"{moment:{fmt}}"


@register.simple_tag
def bar_chart(series, label: str):
    days = series.days
    names = list(series.values)
    peak = max([sum(series.values[n][i] for n in names) for i in range(len(days))] + [1])
    slot = (WIDTH - PAD_LEFT) / max(len(days), 1)
    bars = []
    for i, day in enumerate(days):
        y = HEIGHT - PAD_BOTTOM
        for k, name in enumerate(names):
            count = series.values[name][i]
            if not count:
                continue
            h = (HEIGHT - PAD_BOTTOM - 8) * count / peak
            y -= h
            bars.append((f"chart-s{k % 6}", f"{PAD_LEFT + i * slot + 1:.1f}", f"{y:.1f}", f"{max(slot - 2, 1):.1f}",
                         f"{h:.1f}", f"{_when(day, '%Y-%m-%d')} {name}: {count}"))
    rects = format_html_join("", '<rect class="{}" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>', bars)
    axis = format_html(
        '<text class="chart-axis" x="0" y="12">{}</text><text class="chart-axis" x="0" y="{}">0</text>'
        '<text class="chart-axis" x="{}" y="{}">{}</text><text class="chart-axis" x="{}" y="{}" text-anchor="end">{}</text>',
        peak, HEIGHT - PAD_BOTTOM, PAD_LEFT, HEIGHT - 2, _when(days[0], "%b %d") if days else "",
        WIDTH, HEIGHT - 2, _when(days[-1], "%b %d") if days else "")
    legend = format_html_join("", '<li><span class="chart-key chart-s{}" aria-hidden="true"></span>{}</li>',
                              ((k % 6, name) for k, name in enumerate(names)))
    return format_html('<figure class="chart"><svg viewBox="0 0 {} {}" role="img" aria-label="{}">{}{}</svg>'
                       '<figcaption><ul class="chart-legend">{}</ul></figcaption></figure>',
                       WIDTH, HEIGHT, label, axis, rects, legend)
