//! BigQuery's API as much as sluice needs: datasets and tables over REST (`sluice provision`, the
//! start-up schema check), and queries through the official client's query API (the ids a table
//! already holds, tests). Emulator or bigquery.googleapis.com.

use std::sync::Arc;

use google_cloud_bigquery::client::BigQuery;
use google_cloud_bigquery_v2::model::{QueryParameter, QueryParameterType, QueryParameterValue};
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
    /// The query client could not be built (no credentials, a bad endpoint).
    #[error("opening the BigQuery query client: {0}")]
    QueryClient(#[source] google_cloud_gax::client_builder::Error),
    /// The query failed, or one of its answer's cells could not be read.
    #[error("running a query: {source}")]
    Query { source: Box<dyn std::error::Error + Send + Sync> },
}

impl RestError {
    /// Transport failures and 429/5xx answers may pass; the rest will not.
    pub fn retryable(&self) -> bool {
        match self {
            RestError::Call { source: CallError::Status { status, .. }, .. } => *status == 429 || *status >= 500,
            RestError::Call { source: CallError::Transport(_), .. } => true,
            RestError::Auth(e) => e.is_transient(),
            // The client retries what it can; a job that failed or a query the service refused
            // is asked again on the next redelivery, not in a loop here.
            RestError::QueryClient(_) => false,
            RestError::Query { source } => query_transient(source.as_ref()),
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
    project: String,
    endpoint: Option<String>,
    /// Built on the first query (building it is async, and most users of `Rest` never query).
    queries: Arc<tokio::sync::OnceCell<BigQuery>>,
}

impl Rest {
    pub fn new(config: &BigQueryConfig) -> Result<Rest, RestError> {
        let api = Api::new(config.endpoint.as_deref(), PRODUCTION, Timeout::Whole(std::time::Duration::from_secs(60)))?;
        Ok(Rest {
            base: format!("{}/bigquery/v2/projects/{}", api.base(), config.project),
            api,
            dataset: config.dataset.clone(),
            location: config.location.clone(),
            project: config.project.clone(),
            endpoint: config.endpoint.clone(),
            queries: Arc::default(),
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

    /// Run a standard-SQL query and return its rows, cells as JSON values typed by the answer's
    /// schema (INT64 a number, STRING a string, ARRAY an array).
    pub async fn query(&self, sql: &str) -> Result<Vec<Vec<Value>>, RestError> {
        self.query_with(sql, Vec::new()).await
    }

    /// A query with named parameters (`@name` in the SQL, see [`string_array_param`]); every row
    /// of the answer, page after page. Never a cached answer: callers ask what a table holds now.
    pub async fn query_with(&self, sql: &str, params: Vec<QueryParameter>) -> Result<Vec<Vec<Value>>, RestError> {
        let failed = |e: Box<dyn std::error::Error + Send + Sync>| RestError::Query { source: e };
        let mut query = self
            .query_client()
            .await?
            .query(sql)
            .set_use_query_cache(false)
            .set_location(&self.location)
            .set_timeout_ms(60_000u32);
        if !params.is_empty() {
            query = query.set_parameter_mode("NAMED").set_query_parameters(params);
        }
        let done = query.until_done().await.map_err(|e| failed(e.into()))?;
        let width = done.metadata().schema.as_ref().map_or(0, |s| s.fields.len());
        let mut answer = done.read();
        let mut rows = Vec::new();
        while let Some(row) = answer.next().await {
            let row = row.map_err(|e| failed(e.into()))?;
            rows.push((0..width).map(|i| row.get::<Value>(i)).collect::<Result<_, _>>().map_err(|e| failed(e.into()))?);
        }
        Ok(rows)
    }

    async fn query_client(&self) -> Result<&BigQuery, RestError> {
        self.queries
            .get_or_try_init(|| async {
                let creds = gcp::credentials(self.endpoint.is_some())?;
                let mut b = BigQuery::builder().with_credentials(creds).with_project_id(&self.project);
                if let Some(e) = &self.endpoint {
                    b = b.with_endpoint(e);
                }
                b.build().await.map_err(RestError::QueryClient)
            })
            .await
    }
}

/// Whether a failed query may pass when asked again: the service or the connection failed, not
/// the query.
fn query_transient(e: &(dyn std::error::Error + 'static)) -> bool {
    use google_cloud_bigquery::error::QueryError;
    match e.downcast_ref::<QueryError>() {
        Some(QueryError::Rpc { source, .. }) => {
            source.is_transport()
                || source.is_connect()
                || source.is_io()
                || source.is_timeout()
                || source.http_status_code().is_some_and(|s| s == 429 || s >= 500)
        }
        _ => false,
    }
}

/// A named `ARRAY<STRING>` query parameter.
pub fn string_array_param(name: &str, values: &[&str]) -> QueryParameter {
    let values = values.iter().map(|v| QueryParameterValue::new().set_value(*v));
    QueryParameter::new()
        .set_name(name)
        .set_parameter_type(
            QueryParameterType::new().set_type("ARRAY").set_array_type(QueryParameterType::new().set_type("STRING")),
        )
        .set_parameter_value(QueryParameterValue::new().set_array_values(values))
}

/// A named `TIMESTAMP` query parameter (`value` as RFC 3339).
pub fn timestamp_param(name: &str, value: &str) -> QueryParameter {
    QueryParameter::new()
        .set_name(name)
        .set_parameter_type(QueryParameterType::new().set_type("TIMESTAMP"))
        .set_parameter_value(QueryParameterValue::new().set_value(value))
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
