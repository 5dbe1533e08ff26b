//! Dead letters: refused events become rows of the built-in `dead_letter` schema, written by a
//! lake sink of their own under `<lake>/<dead_letters>/<pipeline>/`. The original bytes are kept.

use std::sync::{Arc, OnceLock};

use base64::Engine;
use chrono::Utc;
use serde_json::json;

use tokio::sync::mpsc;

use crate::event::ack::Outcome;
use crate::event::{DeadLetter, Event};
use crate::schema::{format_timestamp as ts, Schema};

/// The dead-letter schema, compiled in from `schemas/dead_letter.yaml` so it cannot go missing.
pub fn schema() -> Arc<Schema> {
    static SCHEMA: OnceLock<Arc<Schema>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let s: Schema = crate::config::from_yaml_str(include_str!("../../schemas/dead_letter.yaml"))
                .expect("built-in dead_letter schema parses");
            s.check_definition().expect("built-in dead_letter schema is valid");
            Arc::new(s)
        })
        .clone()
}

/// Hand a dead letter to the pipeline's dead-letter sink; if that sink is gone, fail the message
/// so its source redelivers it rather than acking what was never written.
pub async fn send(tx: &mpsc::Sender<DeadLetter>, dead: DeadLetter) {
    if let Err(mpsc::error::SendError(d)) = tx.send(dead).await {
        tracing::error!(message_id = %d.event.message_id, stage = %d.stage,
            "dead-letter sink is gone; message will be redelivered");
        d.event.ack.settle(Outcome::Failed);
    }
}

/// Turn a dead letter into an event whose record is a `dead_letter` row; the ack moves with it.
pub fn to_event(dead: DeadLetter, pipeline: &str) -> Event {
    let DeadLetter { mut event, stage, reason } = dead;
    event.record = json!({
        "failed_at": ts(Utc::now()),
        "pipeline": pipeline,
        "stage": stage,
        "reason": reason,
        "message_id": event.message_id,
        "publish_time": ts(event.publish_time),
        "subscription": &*event.subscription,
        "attributes": event.attributes,
        "data": base64::engine::general_purpose::STANDARD.encode(&event.data),
    });
    event.row = None;
    event.routes = None;
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ack::Ack;
    use crate::event::Message;

    #[test]
    fn keeps_original_bytes_and_reason() {
        let mut attrs = crate::event::Attributes::new();
        attrs.insert("kind".to_string(), "log".to_string());
        let e = Event::alone(
            Message::new("m9", Utc::now(), attrs, bytes::Bytes::from_static(b"\xff not json"), Arc::from("push")),
            Ack::none(),
        );
        let row =
            to_event(DeadLetter { event: e, stage: "transforms[0].parse_json".into(), reason: "bad".into() }, "logs");
        schema().check(&row.record, false).unwrap();
        assert_eq!(row.record["data"], "/yBub3QganNvbg==");
        assert_eq!(row.record["attributes"]["kind"], "log");
        assert_eq!(row.record["stage"], "transforms[0].parse_json");
    }
}
