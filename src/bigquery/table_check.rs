//! Does a BigQuery table take the rows a schema describes? Checked at start, so a mismatch is
//! one clear error naming the table, the column and both types, not a stream of failed appends.

use super::rest::Column;
use crate::schema::{Mode, Schema};

/// BigQuery reports legacy and standard names for the same type.
fn canonical(ty: &str) -> &str {
    match ty {
        "INT64" => "INTEGER",
        "FLOAT64" => "FLOAT",
        "BOOL" => "BOOLEAN",
        "STRUCT" => "RECORD",
        other => other,
    }
}

/// Every problem between `table` (as the API reports it) and `schema`, as sentences.
pub fn mismatches(table: &str, columns: &[Column], schema: &Schema) -> Vec<String> {
    let mut problems = Vec::new();
    for f in &schema.fields {
        let want = f.ty.bigquery_name();
        match columns.iter().find(|c| c.name == f.name) {
            None => problems
                .push(format!("table {table} has no column '{}' (schema '{}' has it as {want})", f.name, schema.name)),
            Some(c) if canonical(&c.ty) != want => problems.push(format!(
                "table {table}, column '{}': the table has {}, schema '{}' has {want}",
                f.name, c.ty, schema.name
            )),
            Some(c) if c.mode == "REPEATED" => problems.push(format!(
                "table {table}, column '{}': the table has a REPEATED column, schema '{}' has a single {want}",
                f.name, schema.name
            )),
            Some(c) if c.mode == "REQUIRED" && f.mode == Mode::Nullable => problems.push(format!(
                "table {table}, column '{}': the table requires a value, schema '{}' allows none",
                f.name, schema.name
            )),
            Some(_) => {}
        }
    }
    for c in columns {
        if c.mode == "REQUIRED" && schema.field(&c.name).is_none() {
            problems.push(format!(
                "table {table}, column '{}': the table requires a value, schema '{}' has no such field",
                c.name, schema.name
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: &str, mode: &str) -> Column {
        Column { name: name.into(), ty: ty.into(), mode: mode.into() }
    }

    fn schema() -> Schema {
        crate::config::from_yaml_str(
            "name: t\nfields:\n  - {name: ts, type: TIMESTAMP, mode: REQUIRED}\n  - {name: n, type: INT64}\n  - {name: s, type: STRING}\n",
        )
        .unwrap()
    }

    #[test]
    fn agreeing_table_passes_with_legacy_type_names_and_extra_nullable_columns() {
        let cols = [
            col("ts", "TIMESTAMP", "REQUIRED"),
            col("n", "INT64", "NULLABLE"),
            col("s", "STRING", "NULLABLE"),
            col("x", "JSON", "NULLABLE"),
        ];
        assert!(mismatches("d.t", &cols, &schema()).is_empty());
    }

    #[test]
    fn names_table_column_and_types() {
        let cols =
            [col("ts", "STRING", "NULLABLE"), col("s", "STRING", "REQUIRED"), col("extra", "STRING", "REQUIRED")];
        assert_eq!(
            mismatches("d.t", &cols, &schema()),
            [
                "table d.t, column 'ts': the table has STRING, schema 't' has TIMESTAMP",
                "table d.t has no column 'n' (schema 't' has it as INTEGER)",
                "table d.t, column 's': the table requires a value, schema 't' allows none",
                "table d.t, column 'extra': the table requires a value, schema 't' has no such field",
            ]
        );
    }
}
