use bytes::Bytes;
use prost::Message as _;

#[path = "proto.rs"]
mod proto;

use super::*;

fn message(i: usize, attributes: &[(&str, &str)]) -> proto::ReceivedMessage {
    proto::ReceivedMessage {
        ack_id: format!("projects/p/subscriptions/s:{i}"),
        message: Some(proto::PubsubMessage {
            data: Bytes::from(format!("{{\"n\":{i},\"é\":\"ü\"}}")),
            attributes: attributes.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            message_id: (1000 + i).to_string(),
            publish_time: Some(prost_types::Timestamp { seconds: 1_764_149_400 + i as i64, nanos: 123_000_000 }),
            ordering_key: "k".into(),
        }),
        delivery_attempt: i as i32,
    }
}

fn decoded(frame: &[u8]) -> Result<Vec<Received>, Malformed> {
    let mut out = Vec::new();
    decode_response(frame, &mut out).map(|()| out)
}

#[test]
fn reads_what_prost_writes() {
    let messages: Vec<_> = (0..5).map(|i| message(i, &[("publisher", "sluice-publish"), ("", "empty key")])).collect();
    let frame = proto::StreamingPullResponse { received_messages: messages.clone() }.encode_to_vec();
    let out = decoded(&frame).unwrap();
    assert_eq!(out.len(), 5);
    for (got, want) in out.iter().zip(&messages) {
        let m = want.message.as_ref().unwrap();
        assert_eq!(got.ack_id, want.ack_id.as_bytes());
        assert_eq!(got.message_id, m.message_id);
        assert_eq!(got.data, m.data);
        assert_eq!(got.attributes, m.attributes.clone().into_iter().collect());
        assert_eq!(got.delivery_attempt, want.delivery_attempt);
        let t = m.publish_time.unwrap();
        assert_eq!(got.publish_time, DateTime::from_timestamp(t.seconds, t.nanos as u32));
    }
}

/// Messages of one response share the texts of their attributes; many distinct ones (past what
/// is kept for sharing) are each read as they are.
#[test]
fn attribute_texts_are_shared_within_a_response() {
    let messages: Vec<_> = (0..40)
        .map(|i| message(i, &[("publisher", "sluice-publish"), ("seq", &i.to_string()), (&format!("k{i}"), "v")]))
        .collect();
    let frame = proto::StreamingPullResponse { received_messages: messages.clone() }.encode_to_vec();
    let out = decoded(&frame).unwrap();
    for (got, want) in out.iter().zip(&messages) {
        assert_eq!(got.attributes, want.message.as_ref().unwrap().attributes.clone().into_iter().collect());
    }
    let publisher = |m: &Received| m.attributes.get("publisher").unwrap().as_ptr();
    assert_eq!(publisher(&out[0]), publisher(&out[39]), "one text for every message");
    // Messages with the same attributes as the one before share them; others do not.
    let same: Vec<_> = [&[("a", "1"), ("b", "2")][..], &[("a", "1"), ("b", "2")], &[("b", "2")], &[], &[("b", "2")]]
        .iter()
        .enumerate()
        .map(|(i, attributes)| message(i, attributes))
        .collect();
    let frame = proto::StreamingPullResponse { received_messages: same.clone() }.encode_to_vec();
    let out = decoded(&frame).unwrap();
    for (got, want) in out.iter().zip(&same) {
        assert_eq!(got.attributes, want.message.as_ref().unwrap().attributes.clone().into_iter().collect());
    }
    assert!(out[0].attributes.shares(&out[1].attributes));
    assert!(!out[1].attributes.shares(&out[2].attributes));
    assert!(out[3].attributes.is_empty() && out[2].attributes.shares(&out[4].attributes), "the last set read");
    // An attribute that is not UTF-8 is refused like any string field.
    let bad = proto::StreamingPullResponse { received_messages: vec![message(0, &[("a", "b")])] }.encode_to_vec();
    let at = bad.windows(3).position(|w| w == [0x12, 0x01, b'b']).unwrap() + 2;
    let mut bad = bad;
    bad[at] = 0xff;
    assert_eq!(decoded(&bad).unwrap_err(), Malformed("string field is not UTF-8"));
}

#[test]
fn skips_fields_it_does_not_know() {
    let mut frame = proto::StreamingPullResponse { received_messages: vec![message(1, &[])] }.encode_to_vec();
    // Fields 3, 4 and 5 (confirmations, subscription properties) and a fixed64 and a fixed32.
    frame.extend_from_slice(&[0x1a, 0x02, 0x08, 0x01, 0x22, 0x00, 0x2a, 0x00]);
    frame.extend_from_slice(&[0x31, 1, 2, 3, 4, 5, 6, 7, 8, 0x3d, 1, 2, 3, 4]);
    let out = decoded(&frame).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].message_id, "1001");
    assert!(out[0].attributes.is_empty());
}

#[test]
fn an_empty_response_holds_no_messages() {
    assert_eq!(decoded(&[]).unwrap(), Vec::new());
}

#[test]
fn damaged_frames_are_refused_never_misread() {
    let frame = proto::StreamingPullResponse { received_messages: vec![message(1, &[("a", "b")]), message(2, &[])] }
        .encode_to_vec();
    // Every truncation fails or yields only whole messages that prost also reads the same.
    for cut in 0..frame.len() {
        match decoded(&frame[..cut]) {
            Ok(out) => {
                let theirs = proto::StreamingPullResponse::decode(&frame[..cut]).expect("prost reads it too");
                assert_eq!(out.len(), theirs.received_messages.len(), "cut at {cut}");
            }
            Err(e) => assert!(e.to_string().starts_with("malformed StreamingPullResponse: "), "{e}"),
        }
    }
    assert_eq!(decoded(&[0x0a, 0x05, 0x0a]).unwrap_err(), Malformed("truncated field"));
    assert_eq!(decoded(&[0x08, 0x01]).unwrap_err(), Malformed("known field with the wrong wire type"));
    assert_eq!(decoded(&[0x17]).unwrap_err(), Malformed("unknown wire type"));
    assert_eq!(decoded(&[0x0a, 0x02, 0x18, 0x01]).unwrap_err(), Malformed("a received message without an ack id"));
    // A message id that is not UTF-8 (the ack id, opaque, may be anything).
    let bad_utf8 = [0x0a, 0x0b, 0x0a, 0x01, b'a', 0x12, 0x06, 0x1a, 0x02, 0xff, 0xfe, 0x0a, 0x00];
    assert_eq!(decoded(&bad_utf8).unwrap_err(), Malformed("string field is not UTF-8"));
    assert_eq!(decoded(&[0x0a; 11]).unwrap_err(), Malformed("truncated field"));
    assert_eq!(decoded(&[0xff; 11]).unwrap_err(), Malformed("varint longer than 10 bytes"));
}

#[test]
fn requests_are_what_prost_reads() {
    let open = Open {
        subscription: "projects/p/subscriptions/s",
        ack_deadline_seconds: 60,
        client_id: "sluice-1",
        max_messages: 5000,
        max_bytes: 50 << 20,
    };
    let theirs = proto::StreamingPullRequest::decode(open.encode()).unwrap();
    assert_eq!(
        theirs,
        proto::StreamingPullRequest {
            subscription: "projects/p/subscriptions/s".into(),
            ack_ids: vec![],
            stream_ack_deadline_seconds: 60,
            client_id: "sluice-1".into(),
            max_outstanding_messages: 5000,
            max_outstanding_bytes: 50 << 20,
        }
    );
    let ids = vec!["a:1".to_string(), "a:2".to_string()];
    let raw: Vec<Bytes> = ids.iter().map(|i| Bytes::from(i.clone())).collect();
    let ack = proto::StreamingPullRequest::decode(acknowledge("projects/p/subscriptions/s", &raw)).unwrap();
    assert_eq!((ack.subscription.as_str(), ack.ack_ids), ("projects/p/subscriptions/s", ids.clone()));
    for seconds in [0, 600] {
        let m = proto::ModifyAckDeadlineRequest::decode(modify_ack_deadline("s", &raw, seconds)).unwrap();
        assert_eq!((m.subscription.as_str(), m.ack_deadline_seconds, &m.ack_ids), ("s", seconds, &ids));
    }
}
