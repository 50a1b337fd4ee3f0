"""The status page for people: server-rendered HTML, no front-end build step.

Flows that need attention come first; each flow has a small inline SVG chart of
records moved and lag over the last 24 hours. The page refreshes itself.
"""
from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI","PingFang SC","Microsoft YaHei",sans-serif;margin:24px;color:#1d2330;background:#f6f7f9}
h1{font-size:20px;margin:0 0 4px} .sub{color:#667;margin-bottom:18px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:12px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:12px 14px}
.card.error,.card.auth_failed{border-left:5px solid #d0342c}.card.degraded{border-left:5px solid #e7a010}.card.warning{border-left:5px solid #e7a010}.card.ok{border-left:5px solid #2f9e55}
.name{font-weight:600;font-size:15px}.badge{font-size:11px;padding:1px 6px;border-radius:9px;margin-left:6px;color:#fff}
.badge.error,.badge.auth_failed{background:#d0342c}.badge.degraded{background:#e7a010}.badge.warning{background:#e7a010}.badge.ok{background:#2f9e55}
dl{display:grid;grid-template-columns:auto 1fr;gap:2px 10px;margin:8px 0}dt{color:#667}dd{margin:0}
.attention{color:#a3320b;font-size:13px}table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eee;font-size:13px}h2{font-size:16px;margin:22px 0 8px}
svg{display:block;margin-top:6px}.legend{font-size:11px;color:#667}
"""


def _fmt_seconds(value: float | None) -> str:
    if value is None:
        return "—"
    value = float(value)
    if value < 120:
        return f"{value:.0f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


def chart(series: list[dict[str, Any]], width: int = 300, height: int = 60) -> str:
    """Bars for records moved per run, a line for lag; 24 hours wide."""
    if not series:
        return f'<svg class="chart" width="{width}" height="{height}" role="img" aria-label="no runs in 24 h"><text x="4" y="{height // 2}" font-size="11" fill="#99a">no runs in the last 24 h</text></svg>'
    times = [datetime.fromisoformat(p["t"]).timestamp() for p in series]
    end = max(times)
    start = end - 24 * 3600
    moved_max = max(1, max(p["moved"] for p in series))
    lags = [p["lag"] for p in series if p["lag"] is not None]
    lag_max = max(lags) if lags else 1
    parts = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="records moved and lag, last 24 h">',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fafbfc"/>']
    for t, p in zip(times, series, strict=True):
        x = (t - start) / (24 * 3600) * (width - 4) + 2
        h = p["moved"] / moved_max * (height - 10)
        parts.append(f'<rect x="{x:.1f}" y="{height - h:.1f}" width="2" height="{h:.1f}" fill="#4c7bd9"><title>{p["moved"]} records</title></rect>')
    points = [
        f'{(t - start) / (24 * 3600) * (width - 4) + 2:.1f},{height - 2 - (p["lag"] / lag_max if lag_max else 0) * (height - 12):.1f}'
        for t, p in zip(times, series, strict=True) if p["lag"] is not None
    ]
    if len(points) >= 2:
        parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="#e7a010" stroke-width="1.5"/>')
    parts.append("</svg>")
    return "".join(parts)


def render_status_page(status: dict[str, Any], *, refresh_seconds: int = 15) -> str:
    cards = []
    for flow in status["flows"]:
        last = flow["last_run"] or {}
        attention = "".join(f"<div class=attention>⚠ {escape(a)}</div>" for a in flow["attention"])
        cards.append(f"""
<div class="card {flow['health']}" data-flow="{escape(flow['name'])}">
  <div class=name>{escape(flow['name'])}<span class="badge {flow['health']}">{flow['health']}</span></div>
  <div class=sub>{escape(flow['entity'])}: {escape(' ↔ '.join(flow['systems']))}</div>
  {attention}
  <dl>
    <dt>last run</dt><dd>{escape(str(last.get('status', 'never')))} {escape((last.get('finished_at') or last.get('started_at') or '')[:19])}</dd>
    <dt>moved 24 h</dt><dd>{flow['records_moved_24h']}</dd>
    <dt>lag</dt><dd>{_fmt_seconds(flow['lag_seconds'])}</dd>
    <dt>next run</dt><dd>{escape((flow['next_run'] or '—')[:19])}</dd>
    <dt>jobs</dt><dd>{flow['jobs'].get('queued', 0)} queued, {flow['jobs'].get('running', 0)} running</dd>
    <dt>review / DLQ</dt><dd>{flow['reviews_open']} reviews, {flow['dead_letters_open']} dead letters, {flow['conflicts_24h']} conflicts 24 h</dd>
  </dl>
  {chart(flow['series'])}
  <div class=legend><span style="color:#4c7bd9">▮ records moved</span> · <span style="color:#e7a010">— lag</span></div>
</div>""")
    rows = []
    for system in status["systems"]:
        rows.append(
            "<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in (
                system["name"], system["type"], system["auth_state"],
                system.get("calls_last_hour", "—"), system.get("errors_last_hour", "—"),
                system.get("paused_until") or "—", system.get("channel_expires_at") or "—",
            )) + "</tr>"
        )
    queue = status["queue"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="{refresh_seconds}">
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<title>crmsync status</title><style>{STYLE}</style></head>
<body>
<h1>crmsync</h1>
<div class=sub>generated {escape(status['generated_at'][:19])} UTC · queue: {queue['queued']} queued, {queue['running']} running, {queue['dead']} dead · oldest waiting {_fmt_seconds(queue['oldest_queued_age_seconds'])}</div>
<div class=grid>{''.join(cards) or '<div class=card>No flows configured.</div>'}</div>
<h2>Systems</h2>
<table><thead><tr><th>system</th><th>type</th><th>auth</th><th>calls 1 h</th><th>errors 1 h</th><th>paused until</th><th>webhook channel expires</th></tr></thead>
<tbody>{''.join(rows)}</tbody></table>
</body></html>"""
