# The BigQuery dataset and one table per entry of `tables`, laid out as schemas/*.yaml say: the
# columns (as `sluice schema KIND` prints them), daily partitions on the `partition_by` column and
# clustering on `cluster_by`. tests/infra_consistency.rs holds the two in agreement.

resource "google_bigquery_dataset" "this" {
  project                    = var.project
  dataset_id                 = var.dataset
  location                   = var.location
  description                = "Events written by sluice."
  labels                     = var.labels
  delete_contents_on_destroy = false
}

resource "google_bigquery_table" "this" {
  for_each    = var.tables
  project     = var.project
  dataset_id  = google_bigquery_dataset.this.dataset_id
  table_id    = each.key
  description = "sluice: schemas/${each.value.schema}.yaml"
  labels      = var.labels
  schema      = jsonencode(each.value.fields)
  clustering  = each.value.cluster_by

  time_partitioning {
    type          = "DAY"
    field         = each.value.partition_by
    expiration_ms = var.partition_expiration_days == null ? null : var.partition_expiration_days * 86400000
  }

  deletion_protection = var.deletion_protection
}

# Appends through the Storage Write API need bigquery.tables.updateData on the tables: the dataset
# role, not a project-wide one.
resource "google_bigquery_dataset_iam_member" "data_editor" {
  for_each   = var.data_editors
  project    = var.project
  dataset_id = google_bigquery_dataset.this.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = each.value
}
