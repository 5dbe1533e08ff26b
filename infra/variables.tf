variable "project" {
  description = "Google Cloud project id (pubsub.project and bigquery.project in the config)."
  type        = string
}

variable "region" {
  description = "Region of the Cloud Run service, the replay job and the workflow."
  type        = string
}

variable "image" {
  description = "The sluice image, built from the repository's Dockerfile and pushed to Artifact Registry."
  type        = string
}

variable "lake_bucket" {
  description = "Name of the lake bucket (globally unique)."
  type        = string
}

variable "lake_location" {
  description = "Location of the lake bucket; null: the region."
  type        = string
  default     = null
}

variable "bigquery_location" {
  description = "Location of the BigQuery dataset (bigquery.location in the config)."
  type        = string
  default     = "US"
}

variable "service_name" {
  description = "Name of the Cloud Run service; also sluice's `instance` (object names add a UUID, so instances never collide)."
  type        = string
  default     = "sluice"
}

variable "delivery" {
  description = "pull: sluice stream-pulls the subscriptions (always-on CPU, min_instances kept warm); push: Pub/Sub pushes to /push/<pipeline> with an OIDC token and Cloud Run scales on requests."
  type        = string
  default     = "pull"
  validation {
    condition     = contains(["pull", "push"], var.delivery)
    error_message = "delivery must be pull or push."
  }
}

variable "min_instances" {
  description = "Instances kept running with pull delivery (each pulls every subscription; Pub/Sub shares the messages between them)."
  type        = number
  default     = 1
}

variable "max_instances" {
  type    = number
  default = 10
}

variable "push_concurrency" {
  description = "Push requests one instance takes at once (Cloud Run max_instance_request_concurrency), at most http.max_outstanding_messages. Each caller waits for its batch, so an instance serves more the more requests are in flight: on 2 vCPUs 6,500-15,600 events/s at 80, 13,900-19,500 at 1,000 (docs/operations.md, `scripts/bench push_throughput`)."
  type        = number
  default     = 1000
}

variable "cpu" {
  description = "vCPUs per instance; see docs/operations.md for events/s per vCPU."
  type        = string
  default     = "2"
}

variable "memory" {
  description = "Memory per instance: flow control (max_outstanding_bytes per subscription) plus open batches; see docs/operations.md."
  type        = string
  default     = "2Gi"
}

variable "lake_retention_days" {
  description = "Delete lake files after this many days; null keeps them."
  type        = number
  default     = null
}

variable "dead_letter_retention_days" {
  type    = number
  default = 90
}

variable "deletion_protection" {
  description = "Protect the tables, the service and the job from terraform destroy."
  type        = bool
  default     = true
}

variable "labels" {
  type    = map(string)
  default = { app = "sluice" }
}

variable "alert_notification_channels" {
  description = "Cloud Monitoring notification channel ids (projects/P/notificationChannels/N) the alert policies of monitoring.tf notify; empty: the alerts show in the console only."
  type        = list(string)
  default     = []
}
