//! `/ui/services`: every producer's state (healthy, degraded, unhealthy, late, down), last seen
//! and expected interval, with a strip of its states over the last hours; down and late ones
//! first and marked. Searchable by name (`q`), filtered by `state`, paginated; below, the latest
//! transitions.

use std::collections::HashMap;
use std::fmt::Write;

use chrono::{DateTime, TimeDelta, Utc};

use super::html::{ago, esc, link, pager, param, search, Html, Paging, Query};
use super::timeline::{Transition, WINDOW_HOURS};
use super::Console;
use crate::health::producers::ProducerView;

const PATH: &str = "/ui/services";
const STATES: [&str; 5] = ["down", "late", "unhealthy", "degraded", "healthy"];

/// Down first, then late, unhealthy, degraded, healthy.
fn rank(state: &str) -> usize {
    STATES.iter().position(|s| *s == state).unwrap_or(STATES.len())
}

pub fn render(c: &Console, q: &Query, now: DateTime<Utc>) -> String {
    let mut h = Html::default();
    h.raw("<h1>Services</h1>");
    let Some(producers) = &c.status.producers else {
        h.raw("<p class=\"muted\">No pipeline is watched for producer liveness (health.producers).</p>");
        return h.0;
    };
    let view = producers.view();
    let needle = q.get("q").map(|s| s.to_lowercase()).unwrap_or_default();
    let state = param(q, "state");
    counts(&mut h, &view, state);
    h.raw(&search(PATH, &[("state", state)], param(q, "q"), "service name"));
    let mut rows: Vec<(&String, &ProducerView)> = view
        .iter()
        .filter(|(name, v)| {
            (needle.is_empty() || name.to_lowercase().contains(&needle))
                && (state.is_empty() || v.state.as_str() == state)
        })
        .collect();
    rows.sort_by(|a, b| (rank(a.1.state.as_str()), a.0).cmp(&(rank(b.1.state.as_str()), b.0)));
    let paging = Paging::from_query(q);
    let shown = &rows[paging.range(rows.len())];
    let timelines = c.timeline.as_ref().map(|t| t.by_service()).unwrap_or_default();
    h.raw(&format!("<p class=\"muted\">Timeline: the last {WINDOW_HOURS} hours, now at the right.</p>"));
    h.raw(
        "<table class=\"services\"><tr><th>service</th><th>state</th><th>last seen</th><th>expected every</th>\
           <th>timeline</th><th>report</th></tr>",
    );
    for (name, v) in shown {
        row(&mut h, name, v, timelines.get(name.as_str()).map(Vec::as_slice).unwrap_or(&[]), now);
    }
    h.raw("</table>");
    let keep = [("q", param(q, "q")), ("state", state)];
    h.raw(&pager(PATH, &keep, paging, rows.len()));
    if let Some(t) = &c.timeline {
        latest(&mut h, &t.latest(50));
    }
    h.0
}

fn counts(h: &mut Html, view: &std::collections::BTreeMap<String, ProducerView>, selected: &str) {
    let mut n: HashMap<&str, usize> = HashMap::new();
    for v in view.values() {
        *n.entry(v.state.as_str()).or_default() += 1;
    }
    let _ = write!(h.0, "<p class=\"counts\"><a href=\"{PATH}\">{} producers</a>:", view.len());
    for s in STATES {
        let class = if s == selected { " active" } else { "" };
        let _ = write!(
            h.0,
            " <a class=\"state {s}{class}\" href=\"{}\"><span class=\"count-{s}\">{}</span> {s}</a>",
            esc(&link(PATH, &[("state", s)])),
            n.get(s).copied().unwrap_or(0)
        );
    }
    h.raw("</p>");
}

fn row(h: &mut Html, name: &str, v: &ProducerView, transitions: &[Transition], now: DateTime<Utc>) {
    let state = v.state.as_str();
    let last_seen = DateTime::parse_from_rfc3339(&v.last_seen).ok().map(|t| t.with_timezone(&Utc));
    let _ = write!(h.0, "<tr class=\"{state}\" data-service=\"{}\"><td><b>", esc(name));
    h.text(name);
    let _ = write!(
        h.0,
        "</b></td><td><span class=\"state {state}\">{state}</span></td><td>{}</td><td class=\"num\">{}s</td><td>{}</td><td>",
        ago(last_seen, now),
        v.interval_seconds,
        strip(transitions, state, now)
    );
    if let Some(r) = &v.report {
        h.text(&r.status);
        if let Some(ms) = r.latency_ms {
            let _ = write!(h.0, " <span class=\"muted\">{ms:.0} ms</span>");
        }
    }
    h.raw("</td></tr>");
}

/// The states over the window as coloured spans, from the transitions (oldest first) and the
/// state now.
pub fn strip(transitions: &[Transition], now_state: &str, now: DateTime<Utc>) -> String {
    const W: f64 = 240.0;
    const MIN: f64 = 4.0;
    let start = now - TimeDelta::hours(WINDOW_HOURS);
    let span = (now - start).num_milliseconds() as f64;
    let x = |t: DateTime<Utc>| ((t - start).num_milliseconds() as f64 / span * W).clamp(0.0, W);
    let mut out = format!("<svg class=\"timeline\" width=\"{W}\" height=\"12\" viewBox=\"0 0 {W} 12\">");
    let mut from = start;
    let mut state = transitions.first().map_or(now_state, |t| t.from.as_str());
    for t in transitions.iter().chain(std::iter::once(&Transition {
        service: String::new(),
        from: now_state.to_owned(),
        to: now_state.to_owned(),
        at: now,
    })) {
        // Every state held since the first transition stays visible: a producer down for seconds
        // is still a mark at the right, drawn over what came before.
        let (x0, x1) = if from == start {
            (x(from), x(t.at))
        } else {
            (x(from).min(W - MIN), x(t.at).max(x(from).min(W - MIN) + MIN))
        };
        if x1 > x0 {
            let class = if rank(state) < STATES.len() { state } else { "unknown" };
            let _ = write!(
                out,
                "<rect class=\"{class}\" x=\"{x0:.1}\" y=\"0\" width=\"{:.1}\" height=\"12\"><title>{}</title></rect>",
                x1 - x0,
                esc(&format!("{class} from {}", from.format("%H:%M:%S")))
            );
        }
        from = t.at.max(from);
        state = &t.to;
    }
    out.push_str("</svg>");
    out
}

fn latest(h: &mut Html, transitions: &[Transition]) {
    h.raw("<h2>Latest transitions</h2>");
    if transitions.is_empty() {
        h.raw("<p class=\"muted\">None since sluice started.</p>");
        return;
    }
    h.raw("<table class=\"transitions\"><tr><th>at</th><th>service</th><th>from</th><th>to</th></tr>");
    for t in transitions {
        let _ = write!(
            h.0,
            "<tr class=\"{}\"><td class=\"mono\">{}</td><td>",
            esc(&t.to),
            t.at.format("%Y-%m-%d %H:%M:%S")
        );
        h.text(&t.service);
        let _ = write!(
            h.0,
            "</td><td><span class=\"state {0}\">{0}</span></td><td><span class=\"state {1}\">{1}</span></td></tr>",
            esc(&t.from),
            esc(&t.to)
        );
    }
    h.raw("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_colours_each_state_between_transitions() {
        let now = Utc::now();
        let t = |mins: i64, from: &str, to: &str| Transition {
            service: "api".into(),
            from: from.into(),
            to: to.into(),
            at: now - TimeDelta::minutes(mins),
        };
        let s = strip(&[t(180, "healthy", "late"), t(90, "late", "down")], "down", now);
        assert_eq!(s.matches("<rect").count(), 3, "{s}");
        assert!(s.contains("class=\"healthy\" x=\"0.0\""));
        assert!(s.contains("class=\"late\" x=\"120.0\" y=\"0\" width=\"60.0\""), "{s}");
        assert!(s.contains("class=\"down\" x=\"180.0\""));
        let hostile = strip(&[t(10, "<script>", "down")], "down", now);
        assert!(!hostile.contains("<script>") && hostile.contains("class=\"unknown\""), "{hostile}");
    }
}
