variable "project" {
  type = string
}

variable "region" {
  type = string
}

variable "jobs" {
  description = "Cloud Run job names to start, by pipeline."
  type        = map(string)
}

variable "schedule" {
  description = "Cron schedule (UTC) of every job."
  type        = string
}

variable "service_account" {
  description = "Email of the account that starts the jobs (run.invoker on them)."
  type        = string
}
