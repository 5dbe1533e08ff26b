//! Sources: where messages come from. Each hands them to a pipeline in batches ([`Handover`]),
//! each with an ack whose outcome it reports back upstream (HTTP status for push, ack/nack for
//! Pub/Sub).

pub mod budget;
pub mod pubsub;
pub mod pull;
pub mod push;

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::event::arrivals::Arrivals;
use crate::event::Handover;
use budget::Budget;

/// Where sources hand events to one pipeline.
#[derive(Clone)]
pub struct PipelineInput {
    pub name: Arc<str>,
    /// Whether `POST /push/<name>` is accepted.
    pub push: bool,
    /// Messages in batches: what a pulled frame holds that the budget had room for, or one push
    /// request's or one internal event. The chain takes several at once.
    pub tx: mpsc::Sender<Handover>,
    /// Flow control of the pipeline, shared with its sinks: its subscription's when pulled, else
    /// its push requests'; `None` for a pipeline fed only internally.
    pub budget: Option<Budget>,
    /// Push requests whose event is not in a batch yet, for a push-only pipeline; `None` when
    /// pulled (its sinks keep their batching) or fed only internally.
    pub arrivals: Option<Arrivals>,
}
