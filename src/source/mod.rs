//! Sources: where events come from. Each builds [`Event`](crate::event::Event)s with an ack
//! whose outcome it reports back upstream (HTTP status for push, ack/nack for Pub/Sub).

pub mod arrivals;
pub mod budget;
pub mod jwks;
pub mod pubsub;
pub mod pull;
pub mod push;
pub mod push_auth;
