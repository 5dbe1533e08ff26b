output "jobs" {
  value = { for k, j in google_cloud_scheduler_job.compact : k => j.name }
}
