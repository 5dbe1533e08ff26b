variable "project" {
  type = string
}

variable "dataset" {
  description = "Dataset id (bigquery.dataset in the config)."
  type        = string
}

variable "location" {
  description = "Dataset location (bigquery.location in the config)."
  type        = string
}

variable "tables" {
  description = "Per table id: the schema it follows, its daily partition column, clustering and columns."
  type = map(object({
    schema       = string
    partition_by = string
    cluster_by   = list(string)
    fields = list(object({
      name        = string
      type        = string
      mode        = string
      description = string
    }))
  }))
}

variable "partition_expiration_days" {
  description = "Drop partitions older than this; null keeps them."
  type        = number
  default     = null
}

variable "deletion_protection" {
  type    = bool
  default = true
}

variable "data_editors" {
  description = "IAM members that append rows, by a name known at plan time."
  type        = map(string)
  default     = {}
}

variable "labels" {
  type    = map(string)
  default = {}
}
