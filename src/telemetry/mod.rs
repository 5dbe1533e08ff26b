//! What a running sluice tells its operators besides `/status` (`server::status`): [`metrics`]
//! (`/metrics`) and its log lines, written here.
//!
//! Logs: one JSON object per line in Cloud Logging's structured format (`severity`, `message`,
//! `time`, `logging.googleapis.com/sourceLocation`, the trace fields, plus the fields of the event
//! and of the spans around it), or human text.
//!
//! A span with `trace_id` (and `span_id`, `trace_sampled`) fields, such as the one each push
//! request runs in ([`TraceContext::span`]), puts its lines under that trace in Cloud Logging:
//! `logging.googleapis.com/trace` is `projects/<project>/traces/<trace_id>` once [`set_project`]
//! named the project.

pub mod metrics;

use std::fmt;
use std::sync::OnceLock;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Cloud Logging structured JSON.
    Json,
    /// Human-readable lines.
    Text,
}

/// Install the global logger. `RUST_LOG` overrides the default level (`info`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.fmt_fields(JsonFields::new()).event_format(CloudLogging).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Cloud Logging's severity names.
fn severity(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG | Level::TRACE => "DEBUG",
    }
}

static PROJECT: OnceLock<String> = OnceLock::new();

/// The Google Cloud project traces belong to (the first call wins).
pub fn set_project(project: &str) {
    let _ = PROJECT.set(project.to_owned());
}

/// A request's trace, from `traceparent` (W3C) or `X-Cloud-Trace-Context`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: String,
    pub span_id: Option<String>,
    pub sampled: bool,
}

impl TraceContext {
    /// From request headers, looked up by lower-case name.
    pub fn from_headers<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Option<TraceContext> {
        if let Some(tp) = header("traceparent") {
            // 00-<32 hex trace>-<16 hex span>-<2 hex flags>
            let parts: Vec<&str> = tp.trim().split('-').collect();
            if let [_, trace, span, flags] = parts[..] {
                if trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit()) && trace.bytes().any(|b| b != b'0')
                {
                    let sampled = u8::from_str_radix(flags, 16).is_ok_and(|f| f & 1 == 1);
                    return Some(TraceContext { trace_id: trace.into(), span_id: Some(span.into()), sampled });
                }
            }
        }
        // TRACE_ID/SPAN_ID;o=1 (span id in decimal)
        let cloud = header("x-cloud-trace-context")?;
        let (ids, options) = cloud.trim().split_once(';').unwrap_or((cloud.trim(), ""));
        let (trace, span) = ids.split_once('/').map_or((ids, None), |(t, s)| (t, Some(s)));
        if trace.is_empty() || !trace.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let span_id = span.and_then(|s| s.parse::<u64>().ok()).map(|s| format!("{s:016x}"));
        Some(TraceContext { trace_id: trace.into(), span_id, sampled: options.contains("o=1") })
    }

    /// A span whose log lines carry this trace.
    pub fn span(&self, name: &'static str, pipeline: &str) -> tracing::Span {
        let span = self.span_id.as_deref().unwrap_or("");
        tracing::info_span!("request", request = name, pipeline, trace_id = %self.trace_id, span_id = span,
            trace_sampled = self.sampled)
    }
}

pub struct CloudLogging;

impl<S, N> FormatEvent<S, N> for CloudLogging
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        // Span fields, outermost first, as the JSON field formatter stored them.
        let mut spans = Map::new();
        for span in ctx.event_scope().into_iter().flat_map(|s| s.from_root()) {
            if let Some(f) = span.extensions().get::<FormattedFields<N>>() {
                if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(f) {
                    spans.extend(m);
                }
            }
        }
        writeln!(writer, "{}", Value::Object(to_json(event, spans)))
    }
}

/// Move trace fields to the names Cloud Logging reads.
fn trace_fields(fields: &mut Map<String, Value>, out: &mut Map<String, Value>) {
    if let Some(Value::String(trace)) = fields.remove("trace_id") {
        let trace = match PROJECT.get() {
            Some(p) => format!("projects/{p}/traces/{trace}"),
            None => trace,
        };
        out.insert("logging.googleapis.com/trace".into(), trace.into());
    }
    match fields.remove("span_id") {
        Some(Value::String(s)) if !s.is_empty() => {
            out.insert("logging.googleapis.com/spanId".into(), s.into());
        }
        _ => {}
    }
    if let Some(sampled) = fields.remove("trace_sampled") {
        out.insert("logging.googleapis.com/trace_sampled".into(), sampled);
    }
}

fn to_json(event: &Event<'_>, mut spans: Map<String, Value>) -> Map<String, Value> {
    let meta = event.metadata();
    let mut fields = Fields(Map::new());
    event.record(&mut fields);
    spans.extend(std::mem::take(&mut fields.0));
    let mut fields = Fields(spans);
    let mut out = Map::new();
    out.insert("severity".into(), severity(meta.level()).into());
    out.insert("message".into(), fields.0.remove("message").unwrap_or(Value::String(String::new())));
    out.insert("time".into(), chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true).into());
    out.insert(
        "logging.googleapis.com/sourceLocation".into(),
        serde_json::json!({ "file": meta.file(), "line": meta.line().map(|l| l.to_string()), "function": meta.target() }),
    );
    trace_fields(&mut fields.0, &mut out);
    out.extend(fields.0);
    out
}

struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_str(&mut self, f: &Field, v: &str) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_f64(&mut self, f: &Field, v: f64) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_debug(&mut self, f: &Field, v: &dyn fmt::Debug) {
        self.0.insert(f.name().into(), format!("{v:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The one line `log` writes, in Cloud Logging's format, as JSON.
    fn logged_line(log: impl FnOnce()) -> Value {
        let buf = Buf::default();
        let out = buf.clone();
        let layer = tracing_subscriber::fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(CloudLogging)
            .with_writer(move || out.clone());
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), log);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        serde_json::from_str(text.trim()).unwrap()
    }

    #[test]
    fn writes_cloud_logging_json() {
        let line = logged_line(|| tracing::warn!(pipeline = "logs", rows = 3u64, "wrote batch"));
        assert_eq!(line["severity"], "WARNING");
        assert_eq!(line["message"], "wrote batch");
        assert_eq!(line["pipeline"], "logs");
        assert_eq!(line["rows"], 3);
        assert!(line["time"].as_str().unwrap().ends_with('Z'));
        assert!(line["logging.googleapis.com/sourceLocation"]["file"].as_str().unwrap().ends_with("telemetry/mod.rs"));
    }

    #[test]
    fn lines_in_a_traced_span_carry_cloud_logging_trace_fields() {
        set_project("proj-1");
        let ctx = TraceContext::from_headers(|h| {
            (h == "traceparent").then_some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        })
        .unwrap();
        let line = logged_line(|| {
            let _g = ctx.span("push", "logs").entered();
            tracing::info!(rows = 2u64, "wrote batch");
        });
        assert_eq!(line["logging.googleapis.com/trace"], "projects/proj-1/traces/4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(line["logging.googleapis.com/spanId"], "00f067aa0ba902b7");
        assert_eq!(line["logging.googleapis.com/trace_sampled"], true);
        assert_eq!(line["pipeline"], "logs", "span fields are kept: {line}");
        assert_eq!(line["rows"], 2);
        assert!(line.get("trace_id").is_none());
    }

    #[test]
    fn reads_x_cloud_trace_context() {
        let ctx = TraceContext::from_headers(|h| {
            (h == "x-cloud-trace-context").then_some("105445aa7843bc8bf206b120001000/1;o=1")
        })
        .unwrap();
        assert_eq!(ctx.trace_id, "105445aa7843bc8bf206b120001000");
        assert_eq!(ctx.span_id.as_deref(), Some("0000000000000001"));
        assert!(ctx.sampled);
        assert!(TraceContext::from_headers(|h| (h == "x-cloud-trace-context").then_some("not a trace")).is_none());
        assert!(TraceContext::from_headers(|_| None).is_none());
    }

    /// A pulled hand-over is counted once for all its messages; each stays outstanding until it settles.
    #[test]
    fn a_hand_over_counts_its_messages_and_each_is_outstanding_until_it_settles() {
        use crate::event::ack::Outcome;
        let m = metrics::Metrics::new();
        let s = m.subscription("logs", "projects/p/subscriptions/logs");
        let published = chrono::Utc::now() - chrono::Duration::seconds(3);
        s.handed(3, 60, published);
        let t = m.pipeline_totals("logs");
        assert_eq!(t.events_in, 3);
        assert!((3.0..10.0).contains(&t.lag_seconds), "lag from the last one's publish time: {}", t.lag_seconds);
        assert!(s.state.last_message_ms.load(std::sync::atomic::Ordering::Relaxed) > 0);
        assert_eq!(s.outstanding(), (3, 60));
        s.settled(Outcome::Delivered, 10);
        s.settled(Outcome::Failed, 20);
        assert_eq!(s.outstanding(), (1, 30));
        s.settled(Outcome::Delivered, 30);
        assert_eq!(s.outstanding(), (0, 0));
        let text = m.encode();
        for line in [
            "sluice_acks_total{pipeline=\"logs\",source=\"pubsub\"} 2",
            "sluice_nacks_total{pipeline=\"logs\",source=\"pubsub\"} 1",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
