//! The console's HTML: escaping, the page layout (navigation, embedded CSS and JavaScript),
//! sparklines as inline SVG, and pagination. Every text that comes from outside (service names,
//! keys, values, payloads, reasons, errors) goes through [`esc`] or [`Html::text`].

use std::collections::HashMap;
use std::fmt::Write;

use chrono::{DateTime, Utc};

const CSS: &str = include_str!("assets/console.css");
/// The live-refresh script, served at [`SCRIPT_PATH`] (the CSP allows no inline script).
pub const JS: &str = include_str!("assets/console.js");
pub const SCRIPT_PATH: &str = "/ui/console.js";

/// Rows per page unless `per` asks otherwise; at most [`MAX_PER_PAGE`].
pub const PER_PAGE: usize = 50;
pub const MAX_PER_PAGE: usize = 500;

/// `text` with `& < > " '` as entities: safe in element content and quoted attributes.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    push_esc(&mut out, text);
    out
}

pub fn push_esc(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// At most `max` characters of `text`, with `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// An HTML fragment under construction; `text` escapes, `raw` is for markup written here.
#[derive(Default)]
pub struct Html(pub String);

impl Html {
    pub fn raw(&mut self, markup: &str) -> &mut Self {
        self.0.push_str(markup);
        self
    }

    pub fn text(&mut self, text: &str) -> &mut Self {
        push_esc(&mut self.0, text);
        self
    }

    /// `<tag class="class">text</tag>`, the text escaped.
    pub fn el(&mut self, tag: &str, class: &str, text: &str) -> &mut Self {
        let _ = write!(self.0, "<{tag} class=\"{class}\">");
        self.text(text);
        let _ = write!(self.0, "</{tag}>");
        self
    }
}

/// The query string of a console URL.
pub type Query = HashMap<String, String>;

/// The query parameter `k`, or "" when absent.
pub fn param<'a>(q: &'a Query, k: &str) -> &'a str {
    q.get(k).map_or("", String::as_str)
}

/// `path?k=v&...` with the values URL-encoded; empty values are left out.
pub fn link(path: &str, params: &[(&str, &str)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params.iter().filter(|(_, v)| !v.is_empty()) {
        q.append_pair(k, v);
    }
    let q = q.finish();
    if q.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{q}")
    }
}

/// Which page of a list to show, from `page` (from 1) and `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub page: usize,
    pub per: usize,
}

impl Paging {
    pub fn from_query(q: &Query) -> Paging {
        let num = |k: &str| q.get(k).and_then(|v| v.parse::<usize>().ok()).filter(|n| *n > 0);
        Paging { page: num("page").unwrap_or(1), per: num("per").unwrap_or(PER_PAGE).min(MAX_PER_PAGE) }
    }

    /// The number of pages for `total` items (at least 1).
    pub fn pages(&self, total: usize) -> usize {
        total.div_ceil(self.per).max(1)
    }

    /// The index range of this page within `total` items (the last page if past the end).
    pub fn range(&self, total: usize) -> std::ops::Range<usize> {
        let page = self.page.min(self.pages(total));
        let start = (page - 1) * self.per;
        start..(start + self.per).min(total)
    }
}

/// "page 2 of 7 (341)" with previous/next links keeping the other parameters.
pub fn pager(path: &str, params: &[(&str, &str)], paging: Paging, total: usize) -> String {
    let pages = paging.pages(total);
    let page = paging.page.min(pages);
    let per = paging.per.to_string();
    let at = |n: usize| {
        let n = n.to_string();
        let mut p: Vec<(&str, &str)> = params.to_vec();
        p.push(("page", &n));
        if paging.per != PER_PAGE {
            p.push(("per", &per));
        }
        esc(&link(path, &p))
    };
    let mut out = format!("<nav class=\"pager\">page <b class=\"page\">{page}</b> of {pages} ({total})");
    if page > 1 {
        let _ = write!(out, " <a rel=\"prev\" href=\"{}\">previous</a>", at(page - 1));
    }
    if page < pages {
        let _ = write!(out, " <a rel=\"next\" href=\"{}\">next</a>", at(page + 1));
    }
    out.push_str("</nav>");
    out
}

/// A search form: hidden fields keep `keep`, a text box edits `q`.
pub fn search(path: &str, keep: &[(&str, &str)], q: &str, placeholder: &str) -> String {
    let mut out = format!("<form class=\"search\" method=\"get\" action=\"{}\">", esc(path));
    for (k, v) in keep.iter().filter(|(_, v)| !v.is_empty()) {
        let _ = write!(out, "<input type=\"hidden\" name=\"{}\" value=\"{}\">", esc(k), esc(v));
    }
    let _ = write!(
        out,
        "<input type=\"search\" name=\"q\" value=\"{}\" placeholder=\"{}\"><button>search</button></form>",
        esc(q),
        esc(placeholder)
    );
    out
}

/// An inline SVG polyline of `values` (oldest first), scaled to their maximum.
pub fn sparkline(values: &[f64], label: &str) -> String {
    const W: f64 = 180.0;
    const H: f64 = 28.0;
    let max = values.iter().copied().fold(0.0_f64, f64::max);
    let step = if values.len() > 1 { W / (values.len() - 1) as f64 } else { W };
    let mut points = String::new();
    for (i, v) in values.iter().enumerate() {
        let y = if max > 0.0 { H - 1.0 - (v / max) * (H - 2.0) } else { H - 1.0 };
        let _ = write!(points, "{:.1},{:.1} ", i as f64 * step, y);
    }
    format!(
        "<svg class=\"spark\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">\
         <polyline fill=\"none\" points=\"{}\"/></svg>",
        esc(label),
        points.trim_end()
    )
}

/// A time as "12s ago" with the RFC 3339 text in its title; "never" for `None`.
pub fn ago(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(t) = t else { return "<span class=\"muted\">never</span>".into() };
    let secs = (now - t).num_seconds().max(0);
    let text = match secs {
        0..=119 => format!("{secs}s ago"),
        120..=7199 => format!("{}m ago", secs / 60),
        _ => format!("{}h ago", secs / 3600),
    };
    format!(
        "<time datetime=\"{0}\" title=\"{0}\">{text}</time>",
        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    )
}

/// One of the four pages, for the navigation bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Services,
    Config,
    DeadLetters,
}

const NAV: [(Nav, &str, &str); 4] = [
    (Nav::Overview, "/", "Overview"),
    (Nav::Services, "/ui/services", "Services"),
    (Nav::Config, "/ui/config", "Configuration"),
    (Nav::DeadLetters, "/ui/dead-letters", "Dead letters"),
];

/// A whole page around `main` (already HTML), with the live-refresh script.
pub fn layout(title: &str, nav: Nav, instance: &str, now: DateTime<Utc>, main: &str) -> String {
    let mut out = String::with_capacity(main.len() + CSS.len() + 1024);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · sluice {}</title><style>{CSS}</style></head><body data-refreshes=\"0\"><header><b>sluice</b> \
         <span class=\"muted\">{}</span><nav>",
        esc(title),
        esc(instance),
        esc(instance)
    );
    for (n, href, name) in NAV {
        let class = if n == nav { " class=\"active\"" } else { "" };
        let _ = write!(out, "<a href=\"{href}\"{class}>{name}</a>");
    }
    let _ = write!(
        out,
        "</nav><span class=\"muted\">refreshed <span id=\"refreshed\">{}</span></span></header>\
         <main id=\"live\" data-refresh-ms=\"5000\">{main}</main><script src=\"{SCRIPT_PATH}\"></script></body></html>",
        now.format("%H:%M:%S")
    );
    out
}

/// The fragment the live refresh fetches: the new `main`, with the time it was rendered.
pub fn fragment(now: DateTime<Utc>, main: &str) -> String {
    format!("<!-- refreshed {} -->{main}", now.format("%H:%M:%S"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        let mut h = Html::default();
        h.el("td", "v", "<img src=x onerror=alert(1)>");
        assert_eq!(h.0, "<td class=\"v\">&lt;img src=x onerror=alert(1)&gt;</td>");
    }

    #[test]
    fn pages_are_bounded_and_links_encoded() {
        let mut q = Query::new();
        q.insert("page".into(), "3".into());
        q.insert("per".into(), "100000".into());
        let p = Paging::from_query(&q);
        assert_eq!(p, Paging { page: 3, per: MAX_PER_PAGE });
        assert_eq!(p.range(1200), 1000..1200);
        assert_eq!(p.range(10), 0..10, "past the end: the last page");
        assert_eq!(Paging::from_query(&Query::new()).range(0), 0..0);
        let pager = pager("/ui/config", &[("q", "a&b <c>")], Paging { page: 2, per: PER_PAGE }, 120);
        assert!(pager.contains("href=\"/ui/config?q=a%26b+%3Cc%3E&amp;page=3\""), "{pager}");
        assert!(pager.contains("page <b class=\"page\">2</b> of 3 (120)"));
    }

    #[test]
    fn sparkline_and_truncation() {
        let s = sparkline(&[0.0, 5.0, 10.0], "in \"x\"");
        assert!(s.contains("points=\"0.0,27.0 90.0,14.0 180.0,1.0\""), "{s}");
        assert!(s.contains("aria-label=\"in &quot;x&quot;\""));
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hé", 2), "hé");
    }
}
