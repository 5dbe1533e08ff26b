# A Workflows workflow that runs a replay: it validates its input, turns it into `sluice replay`
# arguments and runs the Cloud Run replay job with them, waiting for the execution to finish.
#   gcloud workflows run sluice-replay --data='{"pipeline": "logs", "from": "gs://..."}'

resource "google_workflows_workflow" "replay" {
  project         = var.project
  name            = var.name
  region          = var.region
  description     = "Runs sluice replay as a Cloud Run job execution."
  service_account = var.service_account
  labels          = var.labels
  call_log_level  = "LOG_ERRORS_ONLY"
  source_contents = file("${path.module}/replay.yaml")

  deletion_protection = var.deletion_protection

  user_env_vars = {
    REPLAY_JOB    = var.replay_job
    REPLAY_REGION = var.region
  }
}
