//! `/`: sluice's own verdict (healthy, ready, and why not), then per pipeline the events in, out
//! (acknowledged) and dead-lettered per second with 15-minute sparklines, lag, outstanding
//! messages against the flow-control budget, each sink's last write and errors, and each
//! subscription's state. Read from the same metrics and liveness checks as `/status`.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};

use super::html::{ago, esc, sparkline, Html};
use super::Console;
use crate::telemetry::metrics::{SinkMetrics, SourceMetrics};

fn time(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_millis(ms).filter(|_| ms > 0)
}

pub fn render(c: &Console, now: DateTime<Utc>) -> String {
    let mut h = Html::default();
    verdict(c, &mut h);
    let sinks = c.status.metrics.sinks();
    let sources = c.status.metrics.sources();
    h.raw(
        "<h1>Pipelines</h1><table class=\"pipelines\"><tr><th>pipeline</th><th>in/s</th><th>out/s</th>\
           <th>dead-lettered/s</th><th>last 15 min (in, out, dead)</th><th>lag</th><th>outstanding</th></tr>",
    );
    for (i, name) in c.status.pipelines.iter().enumerate() {
        pipeline_row(c, &mut h, i, name, &sources);
    }
    h.raw("</table>");
    sinks_table(&mut h, &sinks, now);
    subscriptions_table(&mut h, &sources, now);
    summary(c, &mut h);
    h.0
}

fn verdict(c: &Console, h: &mut Html) {
    let r = c.status.liveness.report();
    let ok = r.ready && r.healthy;
    let _ = write!(
        h.0,
        "<div class=\"verdict {}\" id=\"verdict\">sluice is <span class=\"healthy\">{}</span> and \
         <span class=\"ready\">{}</span>",
        if ok { "ok" } else { "bad" },
        if r.healthy { "healthy" } else { "unhealthy" },
        if r.ready { "ready" } else { "not ready" }
    );
    if !ok {
        h.raw("<ul class=\"why\">");
        for why in r.unhealthy.iter().chain(&r.not_ready) {
            h.el("li", "why", why);
        }
        h.raw("</ul>");
    }
    h.raw("</div>");
}

fn pipeline_row(c: &Console, h: &mut Html, i: usize, name: &str, sources: &[SourceMetrics]) {
    let series = c.rates.series(i);
    let [r_in, r_out, r_dead] = series.latest();
    let lag = c.status.metrics.pipeline_totals(name).lag_seconds;
    let subs: Vec<&SourceMetrics> = sources.iter().filter(|s| s.pipeline == name).collect();
    let outstanding: i64 = subs.iter().map(|s| s.outstanding().0).sum();
    let budget = match c.budget.pubsub_messages {
        Some(per_sub) if !subs.is_empty() => per_sub * subs.len(),
        _ => c.budget.push_messages,
    };
    let share = if budget > 0 { (outstanding.max(0) as f64 / budget as f64).min(1.0) } else { 0.0 };
    let _ = write!(h.0, "<tr data-pipeline=\"{}\"><td><b>", esc(name));
    h.text(name);
    let _ = write!(
        h.0,
        "</b></td><td class=\"num in\">{r_in:.1}</td><td class=\"num out\">{r_out:.1}</td>\
         <td class=\"num dead\">{r_dead:.2}</td><td>{}{}{}</td><td class=\"num\">{lag:.1}s</td>\
         <td><span class=\"bar\" title=\"{outstanding} of {budget}\"><i style=\"width:{:.0}%\"></i></span> \
         <span class=\"num\">{outstanding} / {budget}</span></td></tr>",
        sparkline(&series.events_in, &format!("{name}: events in per second")),
        sparkline(&series.events_out, &format!("{name}: events out per second")),
        sparkline(&series.dead_lettered, &format!("{name}: dead letters per second")),
        share * 100.0
    );
}

fn sinks_table(h: &mut Html, sinks: &[SinkMetrics], now: DateTime<Utc>) {
    h.raw(
        "<h2>Sinks</h2><table class=\"sinks\"><tr><th>pipeline</th><th>sink</th><th>events out</th>\
           <th>last write</th><th>errors</th><th>failing in a row</th><th>last error</th></tr>",
    );
    for s in sinks {
        let flushed = time(s.state.last_flush_ms.load(Ordering::Relaxed));
        let failing = s.consecutive_failures();
        let _ = write!(h.0, "<tr class=\"{}\"><td>", if failing > 0 { "down" } else { "" });
        h.text(&s.pipeline).raw("</td><td>").text(&s.sink);
        let _ = write!(
            h.0,
            "</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{failing}</td><td>",
            s.events_out(),
            ago(flushed, now),
            s.state.errors.load(Ordering::Relaxed)
        );
        h.text(&s.last_error().unwrap_or_default()).raw("</td></tr>");
    }
    h.raw("</table>");
}

fn subscriptions_table(h: &mut Html, sources: &[SourceMetrics], now: DateTime<Utc>) {
    h.raw("<h2>Subscriptions</h2>");
    if sources.is_empty() {
        h.raw("<p class=\"muted\">No subscription is pulled (pubsub is off): pipelines are fed by push.</p>");
        return;
    }
    h.raw(
        "<table class=\"subscriptions\"><tr><th>pipeline</th><th>subscription</th><th>state</th>\
           <th>last message</th><th>outstanding</th><th>stream restarts</th><th>last error</th></tr>",
    );
    for s in sources {
        let state = if s.connected() { "connected" } else { "disconnected" };
        let (messages, bytes) = s.outstanding();
        h.raw("<tr><td>").text(&s.pipeline).raw("</td><td class=\"mono\">").text(&s.subscription);
        let _ = write!(
            h.0,
            "</td><td><span class=\"state {state}\">{state}</span></td><td>{}</td>\
             <td class=\"num\">{messages} msgs, {bytes} B</td><td class=\"num\">{}</td><td>",
            ago(time(s.state.last_message_ms.load(Ordering::Relaxed)), now),
            s.restarts()
        );
        h.text(&s.last_error().unwrap_or_default()).raw("</td></tr>");
    }
    h.raw("</table>");
}

fn summary(c: &Console, h: &mut Html) {
    h.raw("<h2>Services and configuration</h2><p>");
    match &c.status.producers {
        Some(p) => {
            let view = p.view();
            let count = |s: &str| view.values().filter(|v| v.state.as_str() == s).count();
            let _ = write!(
                h.0,
                "<a href=\"/ui/services\">{} producers</a>: {} down, {} late. ",
                view.len(),
                count("down"),
                count("late")
            );
        }
        None => {
            h.raw("No producer is watched. ");
        }
    }
    if let Some(cs) = &c.status.config_state {
        let (services, keys) = cs.size();
        let _ = write!(h.0, "<a href=\"/ui/config\">{keys} configuration keys of {services} services</a>.");
    }
    h.raw("</p>");
}
