output "dataset" {
  value = google_bigquery_dataset.this.dataset_id
}

output "tables" {
  description = "Table ids by name."
  value       = { for k, t in google_bigquery_table.this : k => t.id }
}
