//! `redact` on a batch's columns: what the row form does to a record, done to the slots that
//! hold its fields (see [`Columnar`]).

use arrow::array::{Array, StringArray};
use serde_json::Value;

use super::needles::any_of;
use super::Redact;
use crate::path::FieldPath;
use crate::transform::columnar::plan::top_level;
use crate::transform::columnar::{with_rows_set, Column, Columnar, Kind, Planner, Rows, Slot};

#[derive(Default)]
pub(super) struct ColumnSlots {
    secret: Vec<usize>,
    walked: Vec<usize>,
    searched: Vec<Searched>,
    /// The secret names, ASCII case ignored as `is_secret_name` does, to pass over JSON text
    /// that holds none of them.
    names: Option<regex::bytes::Regex>,
}

/// Where patterns are searched on columns, in the order the row form searches.
enum Searched {
    Text(usize),
    Json(usize),
    Inside(usize, FieldPath),
}

/// Secret names masked wherever they are (text or JSON slots, and inside JSON values), then the
/// patterns searched where the row form searches them: text slots, JSON values, paths inside
/// those. A time's text is never searched on columns: with built-in patterns only, whose words
/// no time text holds, nothing in it can match; custom patterns keep such a chain on rows.
impl Columnar for Redact {
    fn plan(&mut self, _p: &mut Planner) -> bool {
        true
    }

    fn check(&mut self, slots: &[Slot]) -> bool {
        self.slots = ColumnSlots::default();
        for (i, slot) in slots.iter().enumerate() {
            match (self.is_secret_name(&slot.name), slot.kind) {
                (true, Kind::Str | Kind::Json) => self.slots.secret.push(i),
                (true, _) => return false,
                (false, Kind::Json) if !self.fields.is_empty() => self.slots.walked.push(i),
                (false, _) => {}
            }
        }
        let mut reads_times = false;
        let mut target = |i: usize, path: Option<&FieldPath>| match (slots[i].kind, path) {
            (Kind::Str, None) => Some(Searched::Text(i)),
            (Kind::Json, None) => Some(Searched::Json(i)),
            (Kind::Json, Some(p)) => Some(Searched::Inside(i, p.clone())),
            (Kind::Time, None) => {
                reads_times = true;
                None
            }
            // Numbers and booleans hold no text, and nothing is inside them.
            _ => None,
        };
        self.slots.searched = match &self.in_fields {
            None => (0..slots.len()).filter_map(|i| target(i, None)).collect(),
            Some(paths) => paths
                .iter()
                .filter_map(|p| {
                    let i = slots.iter().position(|s| s.name == p.root())?;
                    target(i, top_level(p).is_none().then_some(p))
                })
                .collect(),
        };
        self.slots.names = any_of(&self.fields);
        !reads_times || self.needles.is_some()
    }

    fn apply_columns(&mut self, rows: &mut Rows, _stage: usize) {
        let fast = rows.fast_rows();
        for &slot in &self.slots.secret {
            let json = Value::String(self.replacement.clone()).to_string();
            let masked = match &rows.cols[slot] {
                Column::Str(a) => Column::Str(mask_set(a, &fast, &self.replacement)),
                Column::Json(a) => Column::Json(mask_set(a, &fast, &json)),
                _ => unreachable!("secret slots are text or JSON"),
            };
            rows.cols[slot] = masked;
        }
        for &slot in &self.slots.walked {
            // Only values whose text holds a secret name can hold a secret key (none is escaped).
            let (buffer, offsets) = json_text(rows, slot);
            // Most batches hold no secret name at all, which one search over the buffer says.
            if self.slots.names.as_ref().is_some_and(|n| !n.is_match(buffer)) {
                continue;
            }
            let text = |r: usize| &buffer[offsets[r] as usize..offsets[r + 1] as usize];
            let which =
                self.json_rows(rows, slot, &fast, |r| self.slots.names.as_ref().is_none_or(|n| n.is_match(text(r))));
            if !which.is_empty() {
                rows.edit_json(slot, &which, |record| self.mask_fields(record));
            }
        }
        for target in &self.slots.searched {
            let (slot, path) = match target {
                Searched::Text(slot) => {
                    self.search_text(rows, *slot, &fast);
                    continue;
                }
                Searched::Json(slot) => (*slot, None),
                Searched::Inside(slot, path) => (*slot, Some(path)),
            };
            // A match holds one of its pattern's words, which the text then holds too.
            let (buffer, offsets) = json_text(rows, slot);
            let candidates = self.needles.as_ref().map(|n| n.candidates_by_row(buffer, offsets));
            let which = self.json_rows(rows, slot, &fast, |r| candidates.as_ref().is_none_or(|c| c[r] != Some(0)));
            if !which.is_empty() {
                rows.edit_json(slot, &which, |record| match path {
                    None => self.mask_patterns(record),
                    Some(p) => p.get_mut(record).into_iter().for_each(|v| self.mask_patterns(v)),
                });
            }
        }
    }
}

impl Redact {
    /// The rows of `fast` whose value in JSON slot `slot` is set and that pass `keep`.
    fn json_rows(&self, rows: &Rows, slot: usize, fast: &[usize], keep: impl Fn(usize) -> bool) -> Vec<usize> {
        let Column::Json(texts) = &rows.cols[slot] else { unreachable!("a JSON slot") };
        fast.iter().copied().filter(|&r| texts.is_valid(r) && keep(r)).collect()
    }

    /// The patterns over one text slot; the column is kept as it is when nothing matched.
    fn search_text(&self, rows: &mut Rows, slot: usize, fast: &[usize]) {
        let Column::Str(text) = &rows.cols[slot] else { unreachable!("a text slot") };
        // One pass of the needles over the column's whole value buffer, not one per row.
        let candidates = self.needles.as_ref().map(|n| n.candidates_by_row(text.values(), text.value_offsets()));
        let masked: Vec<(usize, String)> = fast
            .iter()
            .filter(|&&r| text.is_valid(r))
            .filter_map(|&r| {
                let found = match &candidates {
                    Some(c) => c[r],
                    None => None,
                };
                Some((r, self.mask_with(text.value(r), found)?))
            })
            .collect();
        if masked.is_empty() {
            return;
        }
        let set: Vec<(usize, Option<&str>)> = masked.iter().map(|(r, m)| (*r, Some(m.as_str()))).collect();
        rows.cols[slot] = Column::Str(with_rows_set(text, &set));
    }
}

/// JSON slot `slot`'s text buffer and offsets.
fn json_text(rows: &Rows, slot: usize) -> (&[u8], &[i32]) {
    let Column::Json(texts) = &rows.cols[slot] else { unreachable!("a JSON slot") };
    (texts.value_data(), texts.value_offsets())
}

/// `a` with its set values among rows `which` (ascending) replaced by `mask`.
fn mask_set(a: &StringArray, which: &[usize], mask: &str) -> StringArray {
    let set: Vec<(usize, Option<&str>)> = which.iter().filter(|&&r| a.is_valid(r)).map(|&r| (r, Some(mask))).collect();
    with_rows_set(a, &set)
}
