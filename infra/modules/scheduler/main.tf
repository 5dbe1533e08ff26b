# Cloud Scheduler starts each compaction job on the schedule, through the Cloud Run Admin API's
# jobs.run with the scheduler's own service account (run.invoker on those jobs only).

resource "google_cloud_scheduler_job" "compact" {
  for_each         = var.jobs
  project          = var.project
  region           = var.region
  name             = each.value
  description      = "sluice compact --pipeline ${each.key}"
  schedule         = var.schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = "60s"

  # jobs.run answers at once with an operation; a missed start is made good by the next run.
  retry_config {
    retry_count = 1
  }

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/projects/${var.project}/locations/${var.region}/jobs/${each.value}:run"

    oauth_token {
      service_account_email = var.service_account
    }
  }
}
