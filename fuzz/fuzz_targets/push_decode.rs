//! A push request body (and a publish-time header) through the envelope decoder: an error or a
//! message, never a panic; a decoded envelope's id is never empty.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first line, when short, doubles as the x-goog-pubsub-publish-time header.
    let header = data.split(|b| *b == b'\n').next().filter(|l| l.len() < 64).and_then(|l| std::str::from_utf8(l).ok());
    let body = bytes::Bytes::copy_from_slice(data);
    if let Ok(m) = sluice::source::push::decode(body, |h| {
        (h == sluice::source::push::HEADER_PUBLISH_TIME).then(|| header.unwrap_or_default().to_owned())
    }) {
        assert!(!m.message_id.is_empty());
    }
});
