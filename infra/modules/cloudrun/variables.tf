variable "project" {
  type = string
}

variable "region" {
  type = string
}

variable "name" {
  description = "Service name; the replay job is <name>-replay."
  type        = string
}

variable "image" {
  description = "The sluice image (built from the repository's Dockerfile)."
  type        = string
}

variable "port" {
  description = "Container port: the port of SLUICE_LISTEN in env."
  type        = number
}

variable "env" {
  description = "Environment of the service and the replay job: what config/sluice.yaml interpolates."
  type        = map(string)
}

variable "service_account" {
  description = "Email of the service's runtime service account."
  type        = string
}

variable "replay_env" {
  description = "Environment the replay job has on top of env (its output location, BigQuery on)."
  type        = map(string)
  default     = {}
}

variable "replay_service_account" {
  description = "Email of the replay job's runtime service account."
  type        = string
}

variable "ingress" {
  description = "Pub/Sub push in the same project counts as internal traffic."
  type        = string
  default     = "INGRESS_TRAFFIC_INTERNAL_ONLY"
}

variable "min_instances" {
  type = number
}

variable "max_instances" {
  type = number
}

variable "cpu_idle" {
  description = "false keeps CPU allocated between requests (needed for streaming pull)."
  type        = bool
}

variable "concurrency" {
  description = "Push requests one instance takes at once; each waits for its batch to be written, so more in flight means larger batches and more events/s (docs/operations.md)."
  type        = number
  default     = 1000
}

variable "request_timeout_seconds" {
  description = "Longer than http.request_timeout, so sluice answers 503 itself before Cloud Run cuts the request."
  type        = number
  default     = 90
}

variable "cpu" {
  type    = string
  default = "2"
}

variable "memory" {
  type    = string
  default = "1Gi"
}

variable "replay_cpu" {
  type    = string
  default = "2"
}

variable "replay_memory" {
  type    = string
  default = "2Gi"
}

variable "replay_timeout_seconds" {
  type    = number
  default = 86400
}

variable "custom_audiences" {
  description = "OIDC audiences the service accepts besides its URL (the push subscriptions' audience)."
  type        = list(string)
  default     = []
}

variable "invokers" {
  description = "IAM members that may call the service (the push service account), by a name known at plan time."
  type        = map(string)
  default     = {}
}

variable "replay_runners" {
  description = "IAM members that may run the replay job with overrides, by a name known at plan time."
  type        = map(string)
  default     = {}
}

variable "deletion_protection" {
  type    = bool
  default = true
}

variable "labels" {
  type    = map(string)
  default = {}
}

variable "compact_pipelines" {
  description = "Pipelines to compact, by name: one `sluice compact` job each (values unused)."
  type        = map(any)
  default     = {}
}

variable "compact_args" {
  description = "Arguments after `compact --pipeline <name>`, e.g. --since and --target-size."
  type        = list(string)
  default     = []
}

variable "compact_service_account" {
  description = "Email of the compaction jobs' service account."
  type        = string
  default     = null
}

variable "compact_runners" {
  description = "IAM members that start the compaction jobs (the scheduler), by a name known at plan time."
  type        = map(string)
  default     = {}
}

variable "compact_timeout_seconds" {
  type    = number
  default = 1500
}

variable "compact_max_retries" {
  type    = number
  default = 1
}

variable "compact_cpu" {
  type    = string
  default = "1"
}

variable "compact_memory" {
  description = "Holds one merged object (the target size) and one row group being written."
  type        = string
  default     = "1Gi"
}
