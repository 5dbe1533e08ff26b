//! Whether a chain runs on columns, and on which: the slots its decoder fills.
//!
//! Each stage says what it reads and writes ([`Columnar::plan`]); a chain whose every stage has a
//! columnar form for its configuration gets a plan, any other chain runs row by row on the same
//! batches. Slots are the schema's fields, then any other top-level name a stage moves from (a
//! `rename` source), typed as the field it ends in.

use super::column::Kind;
use super::Rows;
use crate::path::FieldPath;
use crate::schema::{FieldType, Schema};

/// A top-level name the decoder fills.
#[derive(Debug, Clone)]
pub struct Slot {
    pub name: String,
    pub kind: Kind,
    /// A `timestamp` stage reads it before anything else does: the decoder takes every form that
    /// stage accepts. Otherwise a time must already be RFC 3339 text, as `validate` wants it.
    pub any_time: bool,
    /// A schema field (the first slots); others must be gone by the end of the chain.
    pub in_schema: bool,
}

/// A stage's columnar form.
pub trait Columnar: Send {
    /// Add the slots it needs; `false` when its configuration has no columnar form.
    fn plan(&mut self, p: &mut Planner) -> bool;

    /// A last look once every stage has added its slots.
    fn check(&mut self, _slots: &[Slot]) -> bool {
        true
    }

    /// Apply the stage to the rows on the columnar path, stage label `stage` for refusals.
    fn apply_columns(&mut self, rows: &mut Rows, stage: usize);

    /// Whether [`Columnar::apply_columns`] also takes the rows left to the row-by-row path, so
    /// that it sees every row in arrival order (`dedupe`).
    fn takes_slow_rows(&self) -> bool {
        false
    }
}

/// Builds the slot table while each stage is planned, in chain order.
pub struct Planner<'a> {
    pub schema: &'a Schema,
    pub slots: Vec<Slot>,
    /// `(source, target)` slots of every rename planned so far.
    pub renames: Vec<(usize, usize)>,
}

impl<'a> Planner<'a> {
    /// The schema's fields as slots; `None` for a schema with a type the decoder does not fill.
    pub fn new(schema: &'a Schema) -> Option<Planner<'a>> {
        let slots = schema
            .fields
            .iter()
            .map(|f| {
                let kind = match f.ty {
                    FieldType::String => Kind::Str,
                    FieldType::Int64 => Kind::Int,
                    FieldType::Float64 => Kind::Float,
                    FieldType::Bool => Kind::Bool,
                    FieldType::Timestamp => Kind::Time,
                    FieldType::Json => Kind::Json,
                    FieldType::Bytes => return None,
                };
                Some(Slot { name: f.name.clone(), kind, any_time: false, in_schema: true })
            })
            .collect::<Option<_>>()?;
        Some(Planner { schema, slots, renames: Vec::new() })
    }

    /// The slot a top-level path names.
    pub fn slot(&self, path: &FieldPath) -> Option<usize> {
        top_level(path).and_then(|name| self.slots.iter().position(|s| s.name == name))
    }

    /// The schema field slot a top-level path names, if it is of `kind`.
    pub fn field(&self, path: &FieldPath, kind: Kind) -> Option<usize> {
        self.slot(path).filter(|&i| self.slots[i].in_schema && self.slots[i].kind == kind)
    }

    /// A slot for a name that is not a schema field, typed as what it becomes.
    pub fn extra(&mut self, path: &FieldPath, kind: Kind) -> Option<usize> {
        let name = top_level(path)?;
        if let Some(i) = self.slot(path) {
            return (self.slots[i].kind == kind).then_some(i);
        }
        self.slots.push(Slot { name: name.to_owned(), kind, any_time: false, in_schema: false });
        Some(self.slots.len() - 1)
    }
}

/// The path's name when it has one segment.
pub fn top_level(path: &FieldPath) -> Option<&str> {
    let name = path.as_str();
    (!name.contains('.')).then_some(name)
}
