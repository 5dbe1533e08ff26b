//! The chain on batches: payloads decoded straight into typed columns, each stage applied to a
//! whole column at once, and the rows that pass handed on as rows of one Arrow batch.
//!
//! A row the decoder is not sure of (see `decode`) stays on the row-by-row path: the same
//! stages apply to its JSON record, in the same order, so results and refusal reasons are the
//! ones the row engine gives. A chain with a stage that has no columnar form for its
//! configuration runs every row that way ([`plan()`]).

mod column;
mod compact;
mod decode;
pub mod plan;

use std::sync::Arc;

use arrow::array::Array;
use arrow::record_batch::RecordBatch;
use serde_json::Value;

pub use crate::event::row::{Columns, RowRef};
pub use column::{with_rows_set, Column, Kind};
pub use decode::Widths;
pub use plan::{Columnar, Planner, Slot};

use super::{Stage, Verdict};
use crate::event::ack::{Ack, Outcome};
use crate::event::arrivals::Arriving;
use crate::event::{DeadLetter, Event, Handover, Message, Messages};
use crate::path::FieldPath;
use crate::schema::Schema;

/// Sinks chosen by a `route` stage; `None`: every sink of the pipeline.
type Routes = Option<Arc<[Arc<str>]>>;

/// What became of a row so far.
#[derive(Debug)]
pub enum Fate {
    Live,
    /// Filtered or a duplicate: already acknowledged.
    Dropped,
    /// Refused by stage `stage` (its index in the chain).
    Dead {
        stage: usize,
        reason: String,
    },
}

/// One batch between stages: each row's message and ack, its event on the row path (with its
/// record, and its ack), and the columns of the rows on the columnar path.
pub struct Rows {
    pub messages: Arc<Messages>,
    /// Each row's ack, but a row on the row path's, which its event holds.
    acks: Vec<Ack>,
    /// Sinks a `route` stage chose for rows on the columnar path; empty until it chose any.
    routes: Vec<Routes>,
    /// The event of each row on the row path; `None` on the columnar path.
    events: Vec<Option<Box<Event>>>,
    /// Rows left to the row-by-row path.
    pub slow: Vec<bool>,
    pub fate: Vec<Fate>,
    /// One column per slot of the plan; empty when the chain has no plan.
    pub cols: Vec<Column>,
    /// The plan's slots (empty without a plan).
    pub slots: Arc<[Slot]>,
}

impl Rows {
    pub fn len(&self) -> usize {
        self.acks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.acks.is_empty()
    }

    /// Row `r`'s message.
    pub fn message(&self, r: usize) -> &Message {
        &self.messages.0[r]
    }

    /// Row `r`'s event, when it is on the row path.
    pub fn event(&self, r: usize) -> Option<&Event> {
        self.events[r].as_deref()
    }

    /// Row `r`'s ack, wherever it is held.
    pub fn ack_mut(&mut self, r: usize) -> &mut Ack {
        match &mut self.events[r] {
            Some(e) => &mut e.ack,
            None => &mut self.acks[r],
        }
    }

    /// Send row `r` (on the columnar path) to `sinks` only.
    pub fn set_routes(&mut self, r: usize, sinks: Arc<[Arc<str>]>) {
        if self.routes.is_empty() {
            self.routes.resize(self.len(), None);
        }
        self.routes[r] = Some(sinks);
    }

    /// Whether row `r` is live and on the columnar path.
    pub fn is_fast(&self, r: usize) -> bool {
        !self.slow[r] && matches!(self.fate[r], Fate::Live)
    }

    /// The rows live on the columnar path now.
    pub fn fast_rows(&self) -> Vec<usize> {
        (0..self.len()).filter(|&r| self.is_fast(r)).collect()
    }

    pub fn is_live(&self, r: usize) -> bool {
        matches!(self.fate[r], Fate::Live)
    }

    pub fn refuse(&mut self, r: usize, stage: usize, reason: String) {
        self.fate[r] = Fate::Dead { stage, reason };
    }

    /// The slot a top-level name is decoded into.
    pub fn slot_of(&self, name: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.name == name)
    }

    /// Row `r`'s value at `path`, as its record holds it: its slot's value, or a value inside a
    /// JSON slot's. A name that is no slot is absent: the decoder leaves rows that have one.
    pub fn value_at(&self, r: usize, path: &FieldPath) -> Option<Value> {
        path.within(self.cols[self.slot_of(path.root())?].value(r)?)
    }

    /// Change the values of JSON slot `slot` in rows `which` (ascending), each as part of a
    /// record `{name: value}` (so paths reach inside it); the slot takes whatever `edit` leaves
    /// under its name. Gives each edit's result, in the order of `which`.
    pub fn edit_json<T>(&mut self, slot: usize, which: &[usize], mut edit: impl FnMut(&mut Value) -> T) -> Vec<T> {
        let Column::Json(texts) = &self.cols[slot] else { unreachable!("a JSON slot") };
        let name = &self.slots[slot].name;
        let mut results = Vec::with_capacity(which.len());
        let mut edited: Vec<(usize, Option<String>)> = Vec::with_capacity(which.len());
        for &r in which {
            let value = texts.is_valid(r).then(|| serde_json::from_str(texts.value(r)).expect("JSON text"));
            let mut record = Value::Object(value.map(|v| (name.clone(), v)).into_iter().collect());
            results.push(edit(&mut record));
            edited.push((r, record.as_object_mut().and_then(|o| o.remove(name)).map(|v| v.to_string())));
        }
        let set: Vec<(usize, Option<&str>)> = edited.iter().map(|(r, text)| (*r, text.as_deref())).collect();
        self.cols[slot] = Column::Json(column::with_rows_set(texts, &set));
        results
    }

    /// Drop row `r` on purpose: it is acknowledged as done.
    pub fn drop_row(&mut self, r: usize) {
        self.ack_mut(r).take().settle(Outcome::Delivered);
        self.fate[r] = Fate::Dropped;
    }
}

/// What a chain made of a batch, in arrival order.
#[derive(Debug, Default)]
pub struct Batched {
    /// Rows that passed every stage; those decoded into columns carry a [`RowRef`].
    pub forward: Vec<Event>,
    /// Each forwarded row's position in the batch given to the chain.
    pub forward_from: Vec<usize>,
    pub dead: Vec<DeadLetter>,
}

/// Run `batch` through `stages`: on columns when `slots` is a plan, else row by row.
pub fn run(
    stages: &mut [(String, Box<dyn Stage>)],
    slots: Option<&Arc<[Slot]>>,
    schema: &Arc<Schema>,
    batch: Handover,
    widths: &mut Widths,
) -> Batched {
    let Handover { messages, mut acks, arriving, awaited: _ } = batch;
    let n = messages.len();
    // Only a row left to the row path becomes an event now (the stages' row forms take one),
    // with its own message, so the batch's are let go of as soon as no forwarded row needs them.
    let (messages, cols, slow, events) = match slots {
        Some(slots) => {
            let (cols, slow) = decode::decode(slots, messages.iter().map(|m| &m.data[..]), widths);
            let mut own = |r: usize| slow[r].then(|| Box::new(Event::alone(messages[r].clone(), acks[r].take())));
            let events = (0..n).map(&mut own).collect();
            (Arc::new(Messages(messages)), cols, slow, events)
        }
        None => {
            let own = |(m, a): (Message, &mut Ack)| Some(Box::new(Event::alone(m, a.take())));
            let events = messages.into_iter().zip(acks.iter_mut()).map(own).collect();
            (Arc::default(), Vec::new(), vec![true; n], events)
        }
    };
    let slots = slots.cloned().unwrap_or_else(|| Arc::from([]));
    let planned = !slots.is_empty();
    let fate = (0..n).map(|_| Fate::Live).collect();
    let mut rows = Rows { messages, acks, routes: Vec::new(), events, slow, fate, cols, slots };
    for (i, (_, stage)) in stages.iter_mut().enumerate() {
        let mut takes_slow = false;
        if planned {
            let op = stage.columnar().expect("a planned chain has a columnar form of every stage");
            takes_slow = op.takes_slow_rows();
            op.apply_columns(&mut rows, i);
        }
        if !takes_slow {
            apply_rows(stage.as_mut(), &mut rows, i);
        }
    }
    finish(rows, stages, schema, arriving)
}

/// A stage applied row by row to the live rows on the row path.
fn apply_rows(stage: &mut dyn Stage, rows: &mut Rows, i: usize) {
    for r in 0..rows.len() {
        if !rows.is_live(r) {
            continue;
        }
        let Some(event) = rows.events[r].as_deref_mut() else { continue };
        match stage.apply(event) {
            Ok(Verdict::Keep) => {}
            Ok(Verdict::Drop) => rows.drop_row(r),
            Err(reason) => rows.refuse(r, i, reason),
        }
    }
}

/// The rows that passed as events, and those refused as dead letters. Each event is a handle on
/// its message in the batch's shared [`Messages`] and, on the columnar path, on its row of one
/// Arrow batch. Rows no event reads there (dropped ones; in the columns, refused ones too) are
/// left out of both once they are a quarter of the batch: what an event pins stays near its own.
fn finish(
    rows: Rows,
    stages: &[(String, Box<dyn Stage>)],
    schema: &Arc<Schema>,
    arriving: Vec<(usize, Arriving)>,
) -> Batched {
    let Rows { messages, mut acks, routes, mut events, slow, fate, cols, .. } = rows;
    let n = acks.len();
    let in_messages: Vec<bool> = (0..n).map(|r| !slow[r] && !matches!(fate[r], Fate::Dropped)).collect();
    let in_columns: Vec<bool> = (0..n).map(|r| !slow[r] && matches!(fate[r], Fate::Live)).collect();
    let (messages, message_at) = kept_messages(messages, &in_messages);
    let (columns, row_at) = kept_columns(cols, schema, &in_columns);
    // A push request's count as arriving goes with its event (a dropped row's ends here).
    let mut arriving_at: Vec<Option<Arriving>> = Vec::new();
    if !arriving.is_empty() {
        arriving_at.resize_with(n, || None);
        arriving.into_iter().for_each(|(r, a)| arriving_at[r] = Some(a));
    }
    let mut out = Batched::default();
    out.forward.reserve(n);
    out.forward_from.reserve(n);
    for (r, fate) in fate.into_iter().enumerate() {
        let mut event = |events: &mut Vec<Option<Box<Event>>>, acks: &mut Vec<Ack>| {
            let mut event = match events[r].take() {
                Some(e) => *e,
                None => {
                    let at = message_at.as_ref().map_or(r, |at| at[r] as usize);
                    let mut e = Event::of(messages.clone(), at, acks[r].take());
                    e.routes = routes.get(r).cloned().flatten();
                    e
                }
            };
            event.arriving = arriving_at.get_mut(r).and_then(Option::take);
            event
        };
        match fate {
            Fate::Live => {
                let mut event = event(&mut events, &mut acks);
                if let (false, Some(columns)) = (slow[r], &columns) {
                    let row = row_at.as_ref().map_or(r, |at| at[r] as usize);
                    event.row = Some(RowRef { columns: columns.clone(), row });
                }
                out.forward.push(event);
                out.forward_from.push(r);
            }
            Fate::Dropped => {}
            Fate::Dead { stage, reason } => {
                let event = event(&mut events, &mut acks);
                out.dead.push(DeadLetter { event, stage: stages[stage].0.clone(), reason });
            }
        }
    }
    out
}

/// Each row's position among the `kept` ones, when only those are to be kept: a quarter or more
/// of the rows are not. `None`: every row is kept where it is.
fn compacted(kept: &[bool]) -> Option<Vec<u32>> {
    let left_out = kept.iter().filter(|&&k| !k).count();
    if left_out == 0 || 4 * left_out < kept.len() {
        return None;
    }
    let mut next = 0;
    let at = |&k: &bool| {
        let at = next;
        next += u32::from(k);
        at
    };
    Some(kept.iter().map(at).collect())
}

/// The batch's messages the events read, and where each row's is (see [`compacted`]).
fn kept_messages(messages: Arc<Messages>, kept: &[bool]) -> (Arc<Messages>, Option<Vec<u32>>) {
    let Some(at) = compacted(kept) else { return (messages, None) };
    let all = Arc::try_unwrap(messages).map_or_else(|shared| shared.0.clone(), |m| m.0);
    let some = all.into_iter().zip(kept).filter_map(|(m, &k)| k.then_some(m)).collect();
    (Arc::new(Messages(some)), Some(at))
}

/// The Arrow batch of the rows forwarded on the columnar path, if any, and where each row is in
/// it (see [`compacted`]).
fn kept_columns(cols: Vec<Column>, schema: &Arc<Schema>, kept: &[bool]) -> (Option<Arc<Columns>>, Option<Vec<u32>>) {
    if !kept.contains(&true) {
        return (None, None);
    }
    let arrays = cols[..schema.fields.len()].iter().map(Column::to_arrow).collect();
    let mut batch =
        RecordBatch::try_new(schema.arrow_schema_nullable(), arrays).expect("slot columns are typed as the schema's");
    let at = compacted(kept);
    if at.is_some() {
        let mask = arrow::array::BooleanArray::from(kept.to_vec());
        batch = arrow::compute::filter_record_batch(&batch, &mask).expect("a mask as long as the batch");
    }
    (Some(Arc::new(Columns::new(batch, schema.clone()))), at)
}

/// Plan `stages` on columns: a `parse_json` first, then stages that all have a columnar form.
pub fn plan(stages: &mut [(String, Box<dyn Stage>)], first_parses_json: bool, schema: &Schema) -> Option<Arc<[Slot]>> {
    if !first_parses_json {
        return None;
    }
    let mut planner = Planner::new(schema)?;
    for (_, stage) in stages.iter_mut() {
        if !stage.columnar()?.plan(&mut planner) {
            return None;
        }
    }
    let slots = planner.slots;
    for (_, stage) in stages.iter_mut() {
        if !stage.columnar()?.check(&slots) {
            return None;
        }
    }
    Some(slots.into())
}

#[cfg(test)]
mod tests;
