//! Event schemas: the single definition per event kind in `schemas/*.yaml`, from which the record
//! check, the Arrow schema (Parquet) and the BigQuery table schema are all derived.

use std::cmp::Ordering;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field as ArrowField, Schema as ArrowSchema, TimeUnit};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Column types, named as BigQuery's standard SQL names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum FieldType {
    #[serde(alias = "STR")]
    String,
    #[serde(alias = "INTEGER")]
    Int64,
    #[serde(alias = "FLOAT")]
    Float64,
    #[serde(alias = "BOOLEAN")]
    Bool,
    /// RFC 3339 text in records; microseconds UTC in Parquet and BigQuery.
    Timestamp,
    /// Any JSON value; a JSON string column in Parquet, a JSON column in BigQuery.
    Json,
    /// Base64 text in records; raw bytes in Parquet and BigQuery.
    Bytes,
}

impl FieldType {
    /// The type name BigQuery's table API uses.
    pub fn bigquery_name(self) -> &'static str {
        match self {
            FieldType::String => "STRING",
            FieldType::Int64 => "INTEGER",
            FieldType::Float64 => "FLOAT",
            FieldType::Bool => "BOOLEAN",
            FieldType::Timestamp => "TIMESTAMP",
            FieldType::Json => "JSON",
            FieldType::Bytes => "BYTES",
        }
    }

    pub fn arrow_type(self) -> DataType {
        match self {
            FieldType::String | FieldType::Json => DataType::Utf8,
            FieldType::Int64 => DataType::Int64,
            FieldType::Float64 => DataType::Float64,
            FieldType::Bool => DataType::Boolean,
            FieldType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            FieldType::Bytes => DataType::Binary,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Mode {
    #[default]
    Nullable,
    Required,
}

/// One column.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: FieldType,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub description: String,
}

/// One event kind, as written in `schemas/<name>.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The TIMESTAMP column that places a row in its `dt=/hour=` partition.
    pub time_field: Option<String>,
    /// BigQuery table layout; `sluice provision` and `infra/` both follow it.
    #[serde(default)]
    pub table: TableLayout,
    pub fields: Vec<Field>,
    /// Derived from `fields` on first use (they are not changed after loading).
    #[serde(skip)]
    index: OnceLock<Index>,
    /// The Arrow schema as written, then with every column nullable; built on first use, as
    /// every batch names one.
    #[serde(skip)]
    arrow: OnceLock<[Arc<ArrowSchema>; 2]>,
}

/// What a record walk needs to know about the fields, computed once per schema.
#[derive(Debug, Clone)]
struct Index {
    /// Field positions in name order, the order in which a record's keys iterate.
    by_name: Vec<usize>,
    /// Each of those names' [`prefix`], so most comparisons in a walk read no text.
    prefixes: Vec<u64>,
    /// How many fields are REQUIRED.
    required: usize,
}

/// A name's first eight bytes as a big-endian number, zero-padded. Two names whose prefixes differ
/// are ordered as their prefixes are (a shorter name's padding sorts below any byte but 0, as the
/// name itself does); only equal prefixes need the text compared.
fn prefix(name: &str) -> u64 {
    let b = name.as_bytes();
    match b.first_chunk::<8>() {
        Some(head) => u64::from_be_bytes(*head),
        None => b.iter().enumerate().fold(0, |p, (i, &c)| p | u64::from(c) << (56 - 8 * i)),
    }
}

/// Partitioning and clustering of the BigQuery table that holds this kind of event.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableLayout {
    /// TIMESTAMP column the table is partitioned on, by day.
    pub partition_by: Option<String>,
    /// Up to four columns the table is clustered by, in order.
    #[serde(default)]
    pub cluster_by: Vec<String>,
}

/// A BigQuery table-schema entry, as `bq mk --schema` and the tables API take it.
#[derive(Debug, Serialize)]
pub struct BigQueryField<'a> {
    pub name: &'a str,
    #[serde(rename = "type")]
    pub ty: &'static str,
    pub mode: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub description: &'a str,
}

impl Schema {
    /// Read and check `dir/<name>.yaml`.
    pub fn load(dir: &Path, name: &str) -> Result<Schema, String> {
        let path = dir.join(format!("{name}.yaml"));
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("cannot read schema file {}: {e}", path.display()))?;
        let schema: Schema = serde_yaml_ng::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if schema.name != name {
            return Err(format!(
                "{}: name: expected '{name}' (the file name), found '{}'",
                path.display(),
                schema.name
            ));
        }
        schema.check_definition().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(schema)
    }

    /// Names unique and valid, time field present and a TIMESTAMP.
    pub fn check_definition(&self) -> Result<(), String> {
        if self.fields.is_empty() {
            return Err("fields: expected at least one field".into());
        }
        let mut seen = std::collections::HashSet::new();
        for (i, f) in self.fields.iter().enumerate() {
            let valid = f.name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && f.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!(
                    "fields[{i}].name: expected letters, digits and underscores starting with a letter, found '{}'",
                    f.name
                ));
            }
            if !seen.insert(f.name.as_str()) {
                return Err(format!("fields[{i}].name: '{}' is defined twice", f.name));
            }
        }
        if let Some(tf) = &self.time_field {
            match self.field(tf) {
                Some(f) if f.ty == FieldType::Timestamp => {}
                Some(_) => return Err(format!("time_field: '{tf}' must be a TIMESTAMP field")),
                None => return Err(format!("time_field: '{tf}' is not one of the fields")),
            }
        }
        if let Some(p) = &self.table.partition_by {
            match self.field(p) {
                Some(f) if f.ty == FieldType::Timestamp => {}
                Some(_) => return Err(format!("table.partition_by: '{p}' must be a TIMESTAMP field")),
                None => return Err(format!("table.partition_by: '{p}' is not one of the fields")),
            }
        }
        if self.table.cluster_by.len() > 4 {
            return Err("table.cluster_by: BigQuery allows at most 4 clustering columns".into());
        }
        for (i, c) in self.table.cluster_by.iter().enumerate() {
            match self.field(c) {
                Some(f) if matches!(f.ty, FieldType::Json | FieldType::Float64) => {
                    return Err(format!(
                        "table.cluster_by[{i}]: '{c}' is {}, which BigQuery cannot cluster by",
                        f.ty.bigquery_name()
                    ))
                }
                Some(_) => {}
                None => return Err(format!("table.cluster_by[{i}]: '{c}' is not one of the fields")),
            }
        }
        Ok(())
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub fn arrow_schema(&self) -> Arc<ArrowSchema> {
        self.arrow()[0].clone()
    }

    /// The Arrow schema with every column nullable: a chain's batch, which holds a null in every
    /// column of the rows it did not forward.
    pub fn arrow_schema_nullable(&self) -> Arc<ArrowSchema> {
        self.arrow()[1].clone()
    }

    fn arrow(&self) -> &[Arc<ArrowSchema>; 2] {
        self.arrow.get_or_init(|| {
            let field = |f: &Field, nullable: bool| ArrowField::new(&f.name, f.ty.arrow_type(), nullable);
            let schema = |any_null: bool| {
                let fields = self.fields.iter().map(|f| field(f, any_null || f.mode == Mode::Nullable));
                Arc::new(ArrowSchema::new(fields.collect::<Vec<_>>()))
            };
            [schema(false), schema(true)]
        })
    }

    pub fn bigquery_fields(&self) -> Vec<BigQueryField<'_>> {
        self.fields
            .iter()
            .map(|f| BigQueryField {
                name: &f.name,
                ty: f.ty.bigquery_name(),
                mode: match f.mode {
                    Mode::Nullable => "NULLABLE",
                    Mode::Required => "REQUIRED",
                },
                description: &f.description,
            })
            .collect()
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| {
            let mut by_name: Vec<usize> = (0..self.fields.len()).collect();
            by_name.sort_unstable_by(|&a, &b| self.fields[a].name.cmp(&self.fields[b].name));
            let prefixes = by_name.iter().map(|&i| prefix(&self.fields[i].name)).collect();
            let required = self.fields.iter().filter(|f| f.mode == Mode::Required).count();
            Index { by_name, prefixes, required }
        })
    }

    /// A record's entries in its key order, each with the position of its field in `fields`, or
    /// `None` for a key the schema does not name. One merge of two sorted lists, instead of a
    /// search of the record per field.
    pub fn fields_of<'s, 'r>(
        &'s self,
        record: &'r Map<String, Value>,
    ) -> impl Iterator<Item = (Option<usize>, &'r String, &'r Value)> + use<'s, 'r> {
        let Index { by_name, prefixes, .. } = self.index();
        let mut at = 0;
        record.iter().map(move |(key, value)| {
            let p = prefix(key);
            // Equal prefixes of names no longer than eight bytes differ only in length.
            let cmp = |at: usize| {
                let name = &self.fields[by_name[at]].name;
                prefixes[at].cmp(&p).then_with(|| match name.len().max(key.len()) <= 8 {
                    true => name.len().cmp(&key.len()),
                    false => name.as_str().cmp(key.as_str()),
                })
            };
            let mut found = false;
            while at < by_name.len() {
                match cmp(at) {
                    Ordering::Less => at += 1,
                    o => {
                        found = o == Ordering::Equal;
                        break;
                    }
                }
            }
            let field = found.then(|| by_name[at]);
            (field, key, value)
        })
    }

    /// Check a record against the schema: an object, required fields present, every value of its
    /// column's type. With `allow_unknown` false, fields the schema does not name are errors too.
    pub fn check(&self, record: &Value, allow_unknown: bool) -> Result<(), String> {
        let obj = record.as_object().ok_or_else(|| format!("expected a JSON object for schema '{}'", self.name))?;
        if self.conforms(obj, allow_unknown) {
            return Ok(());
        }
        self.first_problem(obj, allow_unknown)
    }

    /// Whether `check` passes, in one walk of the record; the reason is found by `first_problem`.
    fn conforms(&self, obj: &Map<String, Value>, allow_unknown: bool) -> bool {
        let mut required = 0;
        for (field, _, v) in self.fields_of(obj) {
            let Some(i) = field else {
                if allow_unknown {
                    continue;
                }
                return false;
            };
            let f = &self.fields[i];
            if v.is_null() {
                if f.mode == Mode::Required {
                    return false;
                }
            } else if !value_ok(f, v) {
                return false;
            } else {
                required += usize::from(f.mode == Mode::Required);
            }
        }
        required == self.index().required
    }

    /// The error `check` reports: fields in schema order first, then the first unknown key.
    fn first_problem(&self, obj: &Map<String, Value>, allow_unknown: bool) -> Result<(), String> {
        // Schema fields present in the record (null or not): if that is every key, none is unknown.
        let mut known = 0;
        for f in &self.fields {
            let v = obj.get(&f.name);
            known += usize::from(v.is_some());
            match v {
                None | Some(Value::Null) => {
                    if f.mode == Mode::Required {
                        return Err(format!("field '{}' is required by schema '{}'", f.name, self.name));
                    }
                }
                Some(v) => check_value(f, v)?,
            }
        }
        if !allow_unknown && known != obj.len() {
            if let Some(k) = obj.keys().find(|k| self.field(k).is_none()) {
                return Err(format!("field '{k}' is not in schema '{}'", self.name));
            }
        }
        Ok(())
    }
}

/// The canonical text form of a timestamp in records: RFC 3339, UTC, microseconds, `Z`.
pub fn format_timestamp(t: DateTime<Utc>) -> String {
    crate::rfc3339::format(t)
}

/// Parse an RFC 3339 timestamp, the only text form the schema accepts.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    crate::rfc3339::parse(s)
}

/// Whether a non-null value fits its field's type.
fn value_ok(f: &Field, v: &Value) -> bool {
    match f.ty {
        FieldType::String => v.is_string(),
        FieldType::Int64 => v.is_i64(),
        FieldType::Float64 => v.is_number(),
        FieldType::Bool => v.is_boolean(),
        FieldType::Timestamp => v.as_str().is_some_and(|s| parse_timestamp(s).is_some()),
        FieldType::Json => true,
        FieldType::Bytes => v.as_str().is_some_and(|s| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(s).is_ok()
        }),
    }
}

fn check_value(f: &Field, v: &Value) -> Result<(), String> {
    if value_ok(f, v) {
        return Ok(());
    }
    let expected = match f.ty {
        FieldType::String => "a string",
        FieldType::Int64 => "an integer within 64 bits",
        FieldType::Float64 => "a number",
        FieldType::Bool => "true or false",
        FieldType::Timestamp => "an RFC 3339 timestamp string",
        FieldType::Json => "any JSON",
        FieldType::Bytes => "base64 text",
    };
    let mut shown = v.to_string();
    if shown.len() > 60 {
        let cut = (0..=60).rev().find(|&i| shown.is_char_boundary(i)).unwrap_or(0);
        shown.truncate(cut);
        shown.push('…');
    }
    Err(format!("field '{}': expected {expected}, found {shown}", f.name))
}

#[cfg(test)]
mod tests;
