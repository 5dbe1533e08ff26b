variable "project" {
  description = "Project of the topics and subscriptions."
  type        = string
}

variable "project_number" {
  description = "Project number, which names the Pub/Sub service agent."
  type        = string
}

variable "pipelines" {
  description = "Per pipeline name: the topic it reads and the subscription sluice consumes."
  type = map(object({
    topic        = string
    subscription = string
  }))
}

variable "delivery" {
  description = "pull: sluice stream-pulls the subscriptions; push: Pub/Sub pushes to the service."
  type        = string
  validation {
    condition     = contains(["pull", "push"], var.delivery)
    error_message = "delivery must be pull or push."
  }
}

variable "dead_letter_topic" {
  description = "Topic that receives messages after max_delivery_attempts (pubsub.dead_letter_topic)."
  type        = string
}

variable "max_delivery_attempts" {
  description = "Deliveries before a message goes to the dead-letter topic (5 to 100)."
  type        = number
}

variable "ack_deadline_seconds" {
  description = "Ack deadline of the subscriptions (pubsub.ack_deadline)."
  type        = number
}

variable "retry_minimum_backoff" {
  type    = string
  default = "10s"
}

variable "retry_maximum_backoff" {
  type    = string
  default = "600s"
}

variable "topic_retention" {
  type    = string
  default = "86400s"
}

variable "subscription_retention" {
  type    = string
  default = "604800s"
}

variable "dead_letter_retention" {
  type    = string
  default = "604800s"
}

variable "push_url" {
  description = "Base URL of the Cloud Run service (push delivery)."
  type        = string
  default     = ""
}

variable "push_audience" {
  description = "Audience of the push OIDC tokens: one of the service's custom audiences."
  type        = string
  default     = ""
}

variable "push_service_account" {
  description = "Email of the service account whose OIDC token Pub/Sub sends with each push."
  type        = string
  default     = ""
}

variable "consumer_member" {
  description = "IAM member that stream-pulls the subscriptions (pull delivery)."
  type        = string
}

variable "publisher_members" {
  description = "IAM members that may publish to the pipelines' topics, by a name known at plan time."
  type        = map(string)
  default     = {}
}

variable "labels" {
  type    = map(string)
  default = {}
}
