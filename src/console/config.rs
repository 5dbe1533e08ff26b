//! `/ui/config`: the configuration state. Without `service`, the services (searchable by name,
//! paginated) with their number of keys and latest change; with `service`, its keys (key, value,
//! version, author, time, message id; searchable by key, paginated); with `key` too, that key's
//! versions and, given `from` and `to`, the diff between two of them. Values are masked.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::diff::diff;
use super::html::{esc, link, pager, param, search, truncate, Html, Paging, Query};
use super::Console;
use crate::health::config_state::Entry;

const PATH: &str = "/ui/config";
/// Characters of a value shown in a table cell.
const CELL: usize = 200;

pub fn render(c: &Console, q: &Query) -> String {
    let mut h = Html::default();
    let Some(cs) = &c.status.config_state else {
        h.raw("<h1>Configuration</h1><p class=\"muted\">No configuration-changes pipeline: the state is off.</p>");
        return h.0;
    };
    let (service, key) = (param(q, "service"), param(q, "key"));
    cs.read(|state| match (service, key) {
        ("", _) => services(&mut h, state, q),
        (s, "") => keys(c, &mut h, s, state.get(s), q),
        (s, k) => versions(c, &mut h, s, k, state.get(s).and_then(|keys| keys.get(k)), q),
    });
    h.0
}

fn services(h: &mut Html, state: &BTreeMap<String, BTreeMap<String, Entry>>, q: &Query) {
    let total_keys: usize = state.values().map(BTreeMap::len).sum();
    let _ = write!(h.0, "<h1>Configuration</h1><p>{} services, {total_keys} keys.</p>", state.len());
    h.raw(&search(PATH, &[], param(q, "q"), "service name"));
    let needle = param(q, "q").to_lowercase();
    let matching: Vec<(&String, &BTreeMap<String, Entry>)> =
        state.iter().filter(|(s, _)| needle.is_empty() || s.to_lowercase().contains(&needle)).collect();
    let paging = Paging::from_query(q);
    h.raw("<table class=\"config-services\"><tr><th>service</th><th>keys</th><th>latest change</th></tr>");
    for (service, keys) in &matching[paging.range(matching.len())] {
        let latest = keys.values().map(|e| e.changed_at.as_str()).max().unwrap_or("");
        let _ = write!(
            h.0,
            "<tr><td><a href=\"{}\">{}</a></td><td class=\"num\">{}</td><td class=\"mono\">{}</td></tr>",
            esc(&link(PATH, &[("service", service)])),
            esc(service),
            keys.len(),
            esc(latest)
        );
    }
    h.raw("</table>");
    h.raw(&pager(PATH, &[("q", param(q, "q"))], paging, matching.len()));
}

fn keys(c: &Console, h: &mut Html, service: &str, keys: Option<&BTreeMap<String, Entry>>, q: &Query) {
    let _ = write!(h.0, "<h1><a href=\"{PATH}\">Configuration</a> / {}</h1>", esc(service));
    let Some(keys) = keys else {
        h.raw("<p>No configuration change seen for this service.</p>");
        return;
    };
    h.raw(&search(PATH, &[("service", service)], param(q, "q"), "key"));
    let needle = param(q, "q").to_lowercase();
    let matching: Vec<(&String, &Entry)> =
        keys.iter().filter(|(k, _)| needle.is_empty() || k.to_lowercase().contains(&needle)).collect();
    let paging = Paging::from_query(q);
    h.raw(
        "<table class=\"config-keys\"><tr><th>key</th><th>value</th><th>version</th><th>author</th>\
           <th>changed at</th><th>message id</th></tr>",
    );
    for (key, e) in &matching[paging.range(matching.len())] {
        let _ = write!(
            h.0,
            "<tr data-key=\"{0}\"><td><a href=\"{1}\">{0}</a></td><td class=\"mono value\">{2}</td>",
            esc(key),
            esc(&link(PATH, &[("service", service), ("key", key)])),
            esc(&truncate(&c.mask.value(key, &e.value), CELL))
        );
        entry_cells(h, e);
        h.raw("</tr>");
    }
    h.raw("</table>");
    h.raw(&pager(PATH, &[("service", service), ("q", param(q, "q"))], paging, matching.len()));
}

/// Version, author, time and message id cells.
fn entry_cells(h: &mut Html, e: &Entry) {
    let _ = write!(
        h.0,
        "<td class=\"num version\">{}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td>",
        e.version,
        esc(e.author.as_deref().unwrap_or("")),
        esc(&e.changed_at),
        esc(&e.message_id)
    );
}

fn versions(c: &Console, h: &mut Html, service: &str, key: &str, current: Option<&Entry>, q: &Query) {
    let _ = write!(
        h.0,
        "<h1><a href=\"{PATH}\">Configuration</a> / <a href=\"{}\">{}</a> / {}</h1>",
        esc(&link(PATH, &[("service", service)])),
        esc(service),
        esc(key)
    );
    let mut all = c.changes.as_ref().map(|l| l.history(service, key)).unwrap_or_default();
    if let Some(cur) = current {
        if !all.iter().any(|e| e.message_id == cur.message_id) {
            all.push(cur.clone());
        }
    }
    all.sort_by(|a, b| (b.version, &b.message_id).cmp(&(a.version, &a.message_id)));
    if all.is_empty() {
        h.raw("<p>No change seen for this key.</p>");
        return;
    }
    h.raw("<p class=\"muted\">Versions seen by this instance since it started, and the current one.</p>");
    h.raw(
        "<table class=\"config-history\"><tr><th>version</th><th>value</th><th>author</th><th>changed at</th>\
           <th>message id</th><th></th></tr>",
    );
    for (i, e) in all.iter().enumerate() {
        let current = current.is_some_and(|c| c.message_id == e.message_id);
        let _ = write!(
            h.0,
            "<tr{}><td class=\"num version\">{}{}</td><td class=\"mono value\">{}</td>",
            if current { " class=\"current\"" } else { "" },
            e.version,
            if current { " <b>current</b>" } else { "" },
            esc(&truncate(&c.mask.value(key, &e.value), CELL))
        );
        let _ = write!(
            h.0,
            "<td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>",
            esc(e.author.as_deref().unwrap_or("")),
            esc(&e.changed_at),
            esc(&e.message_id)
        );
        if let Some(prev) = all.get(i + 1) {
            let (from, to) = (prev.version.to_string(), e.version.to_string());
            let href = link(PATH, &[("service", service), ("key", key), ("from", &from), ("to", &to)]);
            let _ = write!(h.0, "<a href=\"{}\">diff with {from}</a>", esc(&href));
        }
        h.raw("</td></tr>");
    }
    h.raw("</table>");
    let version = |p: &str| param(q, p).parse::<i64>().ok().and_then(|v| all.iter().find(|e| e.version == v));
    if let (Some(a), Some(b)) = (version("from"), version("to")) {
        let _ = write!(h.0, "<h2>Version {} → {}</h2>", a.version, b.version);
        h.raw(&diff(&c.mask.json(key, &a.value), &c.mask.json(key, &b.value)));
    }
}
