output "service_url" {
  description = "Cloud Run URL: push endpoint base (/push/<pipeline>) and OIDC audience."
  value       = module.cloudrun.url
}

output "lake" {
  description = "SLUICE_LAKE as the service sees it."
  value       = local.service_env.SLUICE_LAKE
}

output "dataset" {
  value = module.bigquery.dataset
}

output "subscriptions" {
  value = module.pubsub.subscriptions
}

output "replay_workflow" {
  description = "gcloud workflows run <this> --data='{\"pipeline\": \"logs\", \"from\": \"gs://...\"}'"
  value       = module.workflows.workflow
}

output "service_accounts" {
  value = local.emails
}
