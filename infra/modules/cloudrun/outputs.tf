output "url" {
  description = "The service URL: push endpoint base and OIDC audience."
  value       = google_cloud_run_v2_service.sluice.uri
}

output "service" {
  value = google_cloud_run_v2_service.sluice.name
}

output "replay_job" {
  value = google_cloud_run_v2_job.job["replay"].name
}

output "compact_jobs" {
  description = "The compaction jobs' names, by pipeline."
  value       = { for p, _ in var.compact_pipelines : p => google_cloud_run_v2_job.job["compact-${p}"].name }
}
