//! `parse_json`: decode the payload bytes into the event's record. The payload must be a JSON object
//! with no repeated key at any depth (see [`crate::json`]); anything else is a dead letter.

use serde::Deserialize;

use super::columnar::{Columnar, Planner, Rows};
use super::{BuildContext, FieldError, Stage, Verdict};
use crate::event::Event;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

impl Config {
    pub fn build(&self, _ctx: &BuildContext) -> Result<ParseJson, FieldError> {
        Ok(ParseJson)
    }
}

pub struct ParseJson;

impl Stage for ParseJson {
    fn apply(&mut self, event: &mut Event) -> Result<Verdict, String> {
        let value: serde_json::Value =
            crate::json::from_slice(&event.data).map_err(|e| format!("payload is not valid JSON: {e}"))?;
        if !value.is_object() {
            let kind = match value {
                serde_json::Value::Array(_) => "an array",
                serde_json::Value::String(_) => "a string",
                serde_json::Value::Number(_) => "a number",
                serde_json::Value::Bool(_) => "a boolean",
                _ => "null",
            };
            return Err(format!("payload must be a JSON object, found {kind}"));
        }
        event.record = value;
        Ok(Verdict::Keep)
    }

    fn columnar(&mut self) -> Option<&mut dyn Columnar> {
        Some(self)
    }
}

/// On columns the payloads were read by the batch's decoder, before the first stage.
impl Columnar for ParseJson {
    fn plan(&mut self, _p: &mut Planner) -> bool {
        true
    }

    fn apply_columns(&mut self, _rows: &mut Rows, _stage: usize) {}
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use bytes::Bytes;
    use serde_json::json;

    #[test]
    fn parses_an_object() {
        let mut stage = build("parse_json: {}", &[]).unwrap();
        let mut e = event(json!(null));
        e.message_mut().data = Bytes::from_static(br#"{"a": 1}"#);
        stage.apply(&mut e).unwrap();
        assert_eq!(e.record, json!({"a": 1}));
    }

    #[test]
    fn refuses_non_objects_and_bad_bytes() {
        let mut stage = build("parse_json: {}", &[]).unwrap();
        let mut e = event(json!(null));
        e.message_mut().data = Bytes::from_static(b"[1,2]");
        assert_eq!(stage.apply(&mut e).unwrap_err(), "payload must be a JSON object, found an array");
        e.message_mut().data = Bytes::from_static(b"{\"a\": \xff}");
        assert!(stage.apply(&mut e).unwrap_err().starts_with("payload is not valid JSON"));
        e.message_mut().data = Bytes::from_static(b"");
        assert!(stage.apply(&mut e).unwrap_err().contains("EOF"));
    }
}
