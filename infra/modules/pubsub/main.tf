# Pub/Sub for sluice: one topic per pipeline, the subscription sluice consumes (streaming pull, or
# push to the Cloud Run service with an OIDC token), and the dead-letter topic every subscription
# forwards undeliverable messages to, with a subscription that holds them for inspection.

locals {
  topics = toset([for p in var.pipelines : p.topic])
  push   = var.delivery == "push"
  # The Pub/Sub service agent forwards to the dead-letter topic and mints push OIDC tokens.
  pubsub_agent = "serviceAccount:service-${var.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic" "pipeline" {
  for_each = local.topics
  project  = var.project
  name     = each.key
  labels   = var.labels

  # Keep acked messages on the topic for a while, so a subscription can be seeked back after a
  # bad deploy without a replay from the lake.
  message_retention_duration = var.topic_retention
}

resource "google_pubsub_topic" "dead_letters" {
  project = var.project
  name    = var.dead_letter_topic
  labels  = var.labels
}

# Without a subscription, messages published to the dead-letter topic would be dropped.
resource "google_pubsub_subscription" "dead_letters_hold" {
  project                    = var.project
  name                       = "${var.dead_letter_topic}-hold"
  topic                      = google_pubsub_topic.dead_letters.id
  labels                     = var.labels
  ack_deadline_seconds       = 60
  message_retention_duration = var.dead_letter_retention

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "pipeline" {
  for_each = var.pipelines
  project  = var.project
  name     = each.value.subscription
  topic    = google_pubsub_topic.pipeline[each.value.topic].id
  labels   = var.labels

  # sluice extends leases of held messages by this much; after a crash they come back within it.
  ack_deadline_seconds       = var.ack_deadline_seconds
  message_retention_duration = var.subscription_retention

  expiration_policy {
    ttl = "" # never expire, however long the consumer is away
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letters.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  # Nacks (a failed sink write) and non-2xx push answers (429 back-pressure, 503) back off.
  retry_policy {
    minimum_backoff = var.retry_minimum_backoff
    maximum_backoff = var.retry_maximum_backoff
  }

  dynamic "push_config" {
    for_each = local.push ? [each.key] : []
    content {
      push_endpoint = "${var.push_url}/push/${push_config.value}"
      oidc_token {
        service_account_email = var.push_service_account
        audience              = var.push_audience
      }
    }
  }

  lifecycle {
    precondition {
      condition     = !local.push || (var.push_url != "" && var.push_audience != "" && var.push_service_account != "")
      error_message = "Push delivery needs push_url (the Cloud Run service URL), push_audience and push_service_account."
    }
  }
}

# sluice (pull) may consume its own subscriptions and read their settings (its readiness check
# gets each subscription every health.check_interval), and nothing else.
resource "google_pubsub_subscription_iam_member" "consumer" {
  for_each = {
    for pair in setproduct(keys(var.pipelines), ["roles/pubsub.subscriber", "roles/pubsub.viewer"]) :
    "${pair[0]} ${pair[1]}" => pair if !local.push
  }
  project      = var.project
  subscription = google_pubsub_subscription.pipeline[each.value[0]].name
  role         = each.value[1]
  member       = var.consumer_member
}

# Dead-lettering: the service agent acknowledges on the source subscriptions and publishes to the
# dead-letter topic.
resource "google_pubsub_subscription_iam_member" "agent_forwards" {
  for_each     = var.pipelines
  project      = var.project
  subscription = google_pubsub_subscription.pipeline[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}

resource "google_pubsub_topic_iam_member" "agent_dead_letters" {
  project = var.project
  topic   = google_pubsub_topic.dead_letters.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_agent
}

# Replay can publish back onto the pipelines' topics (`sluice replay --to topic`). Keyed by the
# members' names, which are known at plan time (their emails may not be).
resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = { for pair in setproduct(tolist(local.topics), keys(var.publisher_members)) : "${pair[0]} ${pair[1]}" => pair }
  project  = var.project
  topic    = google_pubsub_topic.pipeline[each.value[0]].name
  role     = "roles/pubsub.publisher"
  member   = var.publisher_members[each.value[1]]
}

# Push: the service agent signs OIDC tokens as the push service account.
resource "google_service_account_iam_member" "agent_signs_push_tokens" {
  count              = local.push ? 1 : 0
  service_account_id = "projects/${var.project}/serviceAccounts/${var.push_service_account}"
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_agent
}
