variable "project" {
  type = string
}

variable "region" {
  description = "Region of the workflow and of the replay job."
  type        = string
}

variable "name" {
  type = string
}

variable "replay_job" {
  description = "Name of the Cloud Run replay job."
  type        = string
}

variable "service_account" {
  description = "Email of the workflow's service account (may run the replay job with overrides)."
  type        = string
}

variable "deletion_protection" {
  type    = bool
  default = true
}

variable "labels" {
  type    = map(string)
  default = {}
}
