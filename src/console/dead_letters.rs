//! `/ui/dead-letters`: the latest dead letters, read back from the lake: time, pipeline, stage,
//! reason, message id and a masked preview of the payload. Filtered by `pipeline` and by `q` (in
//! the reason), paginated; for each pipeline shown, the `sluice replay` command that runs its dead
//! letters of that time range through the pipeline again.

use std::fmt::Write;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

use super::html::{esc, pager, param, truncate, Html, Paging, Query};
use super::letters::Letter;
use super::Console;

const PATH: &str = "/ui/dead-letters";
/// Characters of the payload shown in the table.
const PREVIEW: usize = 160;

pub fn render(c: &Console, q: &Query) -> String {
    let mut h = Html::default();
    h.raw("<h1>Dead letters</h1>");
    let (pipeline, reason) = (param(q, "pipeline"), param(q, "q"));
    filters(c, &mut h, pipeline, reason);
    c.letters.viewed();
    let letters = c.letters.latest(Some(pipeline).filter(|p| !p.is_empty()), reason);
    if letters.is_empty() {
        h.raw(if c.letters.read_once() {
            "<p class=\"muted\">No dead letter in the lake's last 24 hours matches.</p>"
        } else {
            "<p class=\"muted\">Reading the dead letters from the lake: they show within seconds.</p>"
        });
        return h.0;
    }
    replay_commands(c, &mut h, &letters, !reason.is_empty());
    let paging = Paging::from_query(q);
    h.raw(
        "<table class=\"dead-letters\"><tr><th>failed at</th><th>pipeline</th><th>stage</th><th>reason</th>\
           <th>message id</th><th>payload</th></tr>",
    );
    for l in &letters[paging.range(letters.len())] {
        h.raw("<tr><td class=\"mono\">").text(&l.failed_at).raw("</td><td>").text(&l.pipeline);
        h.raw("</td><td class=\"mono\">").text(&l.stage).raw("</td><td class=\"reason\">").text(&l.reason);
        h.raw("</td><td class=\"mono\">").text(&l.message_id).raw("</td><td><pre class=\"payload\">");
        h.text(&truncate(&c.mask.text(&l.preview), PREVIEW)).raw("</pre></td></tr>");
    }
    h.raw("</table>");
    h.raw(&pager(PATH, &[("pipeline", pipeline), ("q", reason)], paging, letters.len()));
    h.0
}

fn filters(c: &Console, h: &mut Html, pipeline: &str, reason: &str) {
    let _ = write!(h.0, "<form class=\"search\" method=\"get\" action=\"{PATH}\"><select name=\"pipeline\">");
    h.raw("<option value=\"\">every pipeline</option>");
    for p in &c.status.pipelines {
        let selected = if p == pipeline { " selected" } else { "" };
        let _ = write!(h.0, "<option value=\"{0}\"{selected}>{0}</option>", esc(p));
    }
    let _ = write!(
        h.0,
        "</select><input type=\"search\" name=\"q\" value=\"{}\" placeholder=\"reason contains\">\
         <button>filter</button></form>",
        esc(reason)
    );
}

fn parse(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t).ok().map(|t| t.with_timezone(&Utc)).or_else(|| crate::schema::parse_timestamp(t))
}

/// `word` as one shell word.
fn shell(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The replay command for one pipeline's dead letters failed in `[since, until)`.
pub fn replay_command(c: &Console, pipeline: &str, since: DateTime<Utc>, until: DateTime<Utc>) -> String {
    let from = format!("{}/{pipeline}", c.replay.dead_letters.trim_end_matches('/'));
    let to = if c.replay.to_bigquery.iter().any(|p| p == pipeline) { "bigquery" } else { "lake" };
    let ts = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    [
        "sluice replay --config",
        &shell(&c.replay.config),
        "-p",
        &shell(pipeline),
        "--from",
        &shell(&from),
        "--since",
        &ts(since),
        "--until",
        &ts(until),
        "--to",
        to,
    ]
    .join(" ")
}

fn replay_commands(c: &Console, h: &mut Html, letters: &[Letter], filtered: bool) {
    h.raw(
        "<h2>Run them again</h2><p class=\"muted\">Once the cause is fixed, this replays every dead letter of \
           the pipeline failed in that range through its chain",
    );
    h.raw(if filtered { " (whatever the reason: replay has no reason filter)." } else { "." });
    h.raw("</p>");
    let mut pipelines: Vec<&str> = letters.iter().map(|l| l.pipeline.as_str()).collect();
    pipelines.sort_unstable();
    pipelines.dedup();
    for p in pipelines {
        let times: Vec<DateTime<Utc>> =
            letters.iter().filter(|l| l.pipeline == p).filter_map(|l| parse(&l.failed_at)).collect();
        let (Some(first), Some(last)) = (times.iter().min(), times.iter().max()) else { continue };
        let (since, until) = (whole_seconds(*first), whole_seconds(*last) + TimeDelta::seconds(1));
        h.raw("<pre class=\"cmd\">").text(&replay_command(c, p, since, until)).raw("</pre>");
    }
}

/// Whole seconds, so the printed `--since` is not after the first dead letter.
fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted() {
        assert_eq!(shell("config/sluice.yaml"), "config/sluice.yaml");
        assert_eq!(shell("gs://lake/dead-letters/logs"), "gs://lake/dead-letters/logs");
        assert_eq!(shell("my lake/it's"), r"'my lake/it'\''s'");
        assert_eq!(shell("$(rm -rf /)"), "'$(rm -rf /)'");
    }
}
