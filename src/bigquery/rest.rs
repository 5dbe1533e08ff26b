//! The BigQuery REST API, as much as sluice needs: datasets and tables (`sluice provision`, the
//! start-up schema check) and queries (tests, operators). Emulator or bigquery.googleapis.com.

use reqwest::Method;
use serde_json::{json, Value};

use crate::config::global::BigQueryConfig;
use crate::gcp::{self, Api, CallError, Timeout};
use crate::schema::Schema;

const PRODUCTION: &str = "https://bigquery.googleapis.com";

#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error(transparent)]
    Auth(#[from] gcp::AuthError),
    /// No answer, or an answer other than 2xx (404 aside, which callers read as "absent").
    #[error("{what}: {source}")]
    Call { what: String, source: CallError },
    /// The answer said more was to come but not where to read it (no job id).
    #[error("{what}: the answer is incomplete and names no job to read the rest from")]
    Incomplete { what: String },
}

impl RestError {
    /// Transport failures and 429/5xx answers may pass; the rest will not.
    pub fn retryable(&self) -> bool {
        match self {
            RestError::Call { source: CallError::Status { status, .. }, .. } => *status == 429 || *status >= 500,
            RestError::Call { source: CallError::Auth(e), .. } => e.is_transient(),
            RestError::Call { source: CallError::Transport(_), .. } | RestError::Incomplete { .. } => true,
            RestError::Auth(e) => e.is_transient(),
        }
    }
}

/// A column as the tables API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub ty: String,
    pub mode: String,
}

#[derive(Clone)]
pub struct Rest {
    api: Api,
    /// `<endpoint>/bigquery/v2/projects/<project>`
    base: String,
    dataset: String,
    location: String,
}

impl Rest {
    pub fn new(config: &BigQueryConfig) -> Result<Rest, RestError> {
        let api = Api::new(config.endpoint.as_deref(), PRODUCTION, Timeout::Whole(std::time::Duration::from_secs(60)))?;
        Ok(Rest {
            base: format!("{}/bigquery/v2/projects/{}", api.base(), config.project),
            api,
            dataset: config.dataset.clone(),
            location: config.location.clone(),
        })
    }

    pub fn dataset(&self) -> &str {
        &self.dataset
    }

    /// One call; `None` when the API answers 404 (the dataset, table or job is not there).
    async fn call(
        &self,
        what: &str,
        method: Method,
        url: &str,
        build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<Option<Value>, RestError> {
        let request = build(self.api.request(method, url).await?);
        match self.api.send(request).await {
            Ok(resp) => Ok(Some(resp.json().await.unwrap_or(Value::Null))),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(source) => Err(RestError::Call { what: what.into(), source }),
        }
    }

    /// The table's columns, or `None` when the table does not exist.
    pub async fn table_columns(&self, table: &str) -> Result<Option<Vec<Column>>, RestError> {
        let what = format!("reading table {}.{table}", self.dataset);
        let url = format!("{}/datasets/{}/tables/{table}", self.base, self.dataset);
        let Some(body) = self.call(&what, Method::GET, &url, |r| r).await? else { return Ok(None) };
        Ok(Some(columns(&body["schema"]["fields"])))
    }

    /// The table resource as the API returns it (partitioning, clustering, schema).
    pub async fn table(&self, table: &str) -> Result<Option<Value>, RestError> {
        let what = format!("reading table {}.{table}", self.dataset);
        let url = format!("{}/datasets/{}/tables/{table}", self.base, self.dataset);
        self.call(&what, Method::GET, &url, |r| r).await
    }

    /// Create the dataset unless it exists; true when it was created.
    pub async fn ensure_dataset(&self) -> Result<bool, RestError> {
        let what = format!("creating dataset {}", self.dataset);
        let url = format!("{}/datasets/{}", self.base, self.dataset);
        if self.call(&what, Method::GET, &url, |r| r).await?.is_some() {
            return Ok(false);
        }
        let body = json!({"datasetReference": {"datasetId": self.dataset}, "location": self.location});
        let url = format!("{}/datasets", self.base);
        self.call(&what, Method::POST, &url, |r| r.json(&body)).await.map(|_| true)
    }

    /// Create the table from the schema (columns, daily partitioning, clustering) unless it
    /// exists; true when it was created.
    pub async fn ensure_table(&self, table: &str, schema: &Schema) -> Result<bool, RestError> {
        if self.table(table).await?.is_some() {
            return Ok(false);
        }
        let what = format!("creating table {}.{table}", self.dataset);
        let url = format!("{}/datasets/{}/tables", self.base, self.dataset);
        let body = table_resource(&self.dataset, table, schema);
        self.call(&what, Method::POST, &url, |r| r.json(&body)).await.map(|_| true)
    }

    /// Run a standard-SQL query and return its rows as JSON values (cells as the API types them).
    pub async fn query(&self, sql: &str) -> Result<Vec<Vec<Value>>, RestError> {
        self.query_with(sql, Vec::new()).await
    }

    /// A query with named parameters (`@name` in the SQL), each a `QueryParameter` resource such
    /// as [`string_array_param`] builds; every row of the answer, page after page.
    pub async fn query_with(&self, sql: &str, params: Vec<Value>) -> Result<Vec<Vec<Value>>, RestError> {
        let what = "running a query".to_string();
        // Never a cached answer: callers ask what a table holds now.
        let mut body = json!({"query": sql, "useLegacySql": false, "timeoutMs": 60000, "useQueryCache": false});
        if !params.is_empty() {
            body["parameterMode"] = json!("NAMED");
            body["queryParameters"] = Value::Array(params);
        }
        let url = format!("{}/queries", self.base);
        let resp = self.call(&what, Method::POST, &url, |r| r.json(&body)).await?.unwrap_or(Value::Null);
        // An unfinished job, or an answer in pages: read on through getQueryResults.
        let mut rows = Vec::new();
        let mut page = resp;
        loop {
            let complete = page["jobComplete"] != json!(false);
            if complete {
                rows.extend(cells(&page));
            }
            let token = page["pageToken"].as_str().map(str::to_owned);
            if complete && token.is_none() {
                return Ok(rows);
            }
            let job = page["jobReference"]["jobId"].as_str().ok_or(RestError::Incomplete { what: what.clone() })?;
            let url = format!("{}/queries/{job}", self.base);
            let query = |r: reqwest::RequestBuilder| {
                let r = r.query(&[("timeoutMs", "60000"), ("location", self.location.as_str())]);
                match &token {
                    Some(t) => r.query(&[("pageToken", t.as_str())]),
                    None => r,
                }
            };
            let next = self
                .call(&what, Method::GET, &url, query)
                .await?
                .ok_or(RestError::Incomplete { what: what.clone() })?;
            page = next;
        }
    }
}

/// The rows of one answer page, cells as the API types them.
fn cells(page: &Value) -> Vec<Vec<Value>> {
    page["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| r["f"].as_array().map(|c| c.iter().map(|c| c["v"].clone()).collect()).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default()
}

/// A named `ARRAY<STRING>` query parameter.
pub fn string_array_param(name: &str, values: &[&str]) -> Value {
    json!({
        "name": name,
        "parameterType": {"type": "ARRAY", "arrayType": {"type": "STRING"}},
        "parameterValue": {"arrayValues": values.iter().map(|v| json!({"value": v})).collect::<Vec<_>>()},
    })
}

fn columns(fields: &Value) -> Vec<Column> {
    fields
        .as_array()
        .map(|fs| {
            fs.iter()
                .map(|f| Column {
                    name: f["name"].as_str().unwrap_or_default().to_owned(),
                    ty: f["type"].as_str().unwrap_or_default().to_owned(),
                    mode: f["mode"].as_str().unwrap_or("NULLABLE").to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The tables API resource for a schema: columns, daily partitioning and clustering.
pub fn table_resource(dataset: &str, table: &str, schema: &Schema) -> Value {
    let mut body = json!({
        "tableReference": {"datasetId": dataset, "tableId": table},
        "description": schema.description,
        "schema": {"fields": schema.bigquery_fields()},
    });
    if let Some(p) = &schema.table.partition_by {
        body["timePartitioning"] = json!({"type": "DAY", "field": p});
    }
    if !schema.table.cluster_by.is_empty() {
        body["clustering"] = json!({"fields": schema.table.cluster_by});
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_resource_has_partitioning_and_clustering() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let s = Schema::load(&dir, "log").unwrap();
        let r = table_resource("sluice", "logs", &s);
        assert_eq!(r["timePartitioning"], json!({"type": "DAY", "field": "timestamp"}));
        assert_eq!(r["clustering"]["fields"], json!(["service", "severity"]));
        assert_eq!(r["schema"]["fields"][0]["name"], "timestamp");
        assert_eq!(r["schema"]["fields"][0]["mode"], "REQUIRED");
    }
}
