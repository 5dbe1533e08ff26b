variable "project" {
  type = string
}

variable "name" {
  description = "Bucket name (globally unique)."
  type        = string
}

variable "location" {
  description = "Bucket location, e.g. EU or europe-west1 (same as the Cloud Run region keeps egress free)."
  type        = string
}

variable "lake_prefix" {
  description = "Prefix of the lake under the bucket (the path part of lake.location)."
  type        = string
}

variable "dead_letters_prefix" {
  description = "Prefix of the dead letters (<lake_prefix>/<lake.dead_letters>/)."
  type        = string
}

variable "replay_prefix" {
  description = "Prefix where replay jobs write their output and checkpoints."
  type        = string
}

variable "nearline_after_days" {
  type    = number
  default = 30
}

variable "coldline_after_days" {
  type    = number
  default = 90
}

variable "retention_days" {
  description = "Delete lake files after this many days; null keeps them."
  type        = number
  default     = null
}

variable "dead_letter_retention_days" {
  type    = number
  default = 90
}

variable "replay_retention_days" {
  type    = number
  default = 14
}

variable "object_users" {
  description = "IAM members that write and read objects (sluice), by a name known at plan time."
  type        = map(string)
  default     = {}
}

variable "object_viewers" {
  description = "IAM members that only read objects (replay), by a name known at plan time."
  type        = map(string)
  default     = {}
}

variable "replay_writers" {
  description = "IAM members that may create, overwrite and delete objects under replay_prefix."
  type        = map(string)
  default     = {}
}

variable "labels" {
  type    = map(string)
  default = {}
}

variable "compact_users" {
  description = "IAM members that replace lake objects (compaction), by a name known at plan time."
  type        = map(string)
  default     = {}
}
