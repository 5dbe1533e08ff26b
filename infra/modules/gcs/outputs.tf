output "bucket" {
  value = google_storage_bucket.lake.name
}

output "url" {
  value = google_storage_bucket.lake.url
}
