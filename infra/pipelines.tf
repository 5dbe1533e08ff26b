# What the config names, as Terraform creates it. tests/infra_consistency.rs compares these with
# config/sluice.yaml, pipelines/*.yaml and schemas/*.yaml (loaded with service_env below) and fails
# on any difference, so change both together.

locals {
  # pipelines/<name>.yaml: source.topic and source.subscription.
  pipelines = {
    "config-changes" = {
      topic        = "config-changes"
      subscription = "config-changes-sluice"
    }
    health = {
      topic        = "health"
      subscription = "health-sluice"
    }
    logs = {
      topic        = "logs"
      subscription = "logs-sluice"
    }
  }

  # config/sluice.yaml `pubsub`: dead_letter_topic, max_delivery_attempts, ack_deadline.
  dead_letter_topic     = "sluice-dead-letters"
  max_delivery_attempts = 10
  ack_deadline_seconds  = 60

  # The lake: gs://<lake_bucket>/<lake_prefix>; dead letters under lake.dead_letters.
  lake_prefix         = "events"
  dead_letters_prefix = "events/dead-letters/"
  replay_prefix       = "replay/"

  # `sluice compact` per pipeline: a Cloud Run job each, started by Cloud Scheduler. Hourly, over
  # the hours of the last two days (a run that failed is made good by the next); one execution
  # with its retry ends within the interval, so two runs of a pipeline never overlap.
  # tests/infra_consistency.rs checks these against each other and the config's batch max_age.
  compact = {
    schedule        = "15 * * * *"
    interval_hours  = 1
    since           = "48h"
    target_size     = "128MiB"
    timeout_seconds = 1500
    max_retries     = 1
  }

  # sluice's HTTP port in the container.
  port = 8080

  # Audience of the push subscriptions' OIDC tokens, a custom audience of the service.
  push_audience = "https://${var.service_name}.push.${var.project}"

  # The environment of the service and the replay job: what config/sluice.yaml interpolates.
  service_env = {
    SLUICE_INSTANCE     = var.service_name
    SLUICE_LISTEN       = "0.0.0.0:${local.port}"
    SLUICE_LAKE         = "gs://${var.lake_bucket}/${local.lake_prefix}"
    SLUICE_PUBSUB       = var.delivery == "pull" ? "true" : "false"
    SLUICE_PROJECT      = var.project
    SLUICE_ACK_DEADLINE = "${local.ack_deadline_seconds}s"
    SLUICE_BIGQUERY     = "true"
    SLUICE_DATASET      = local.dataset
    # Committed streams plus the redelivery check: no duplicate rows after a crash or scale-in.
    SLUICE_BIGQUERY_WRITE_MODE = "exactly_once"
  }

  # Added for the replay job: its output and checkpoints go under replay_prefix (the only place
  # it may write).
  replay_env = {
    SLUICE_REPLAY_OUTPUT = "gs://${var.lake_bucket}/${local.replay_prefix}"
  }

  # BigQuery: bigquery.dataset, and per table (a pipeline's bigquery sink `table`) the schema it
  # follows with its columns as `sluice schema KIND` prints them and the schema's `table:` layout.
  dataset = "sluice"
  tables = {
    logs = {
      schema       = "log"
      partition_by = "timestamp"
      cluster_by   = ["service", "severity"]
      fields = [
        { name = "timestamp", type = "TIMESTAMP", mode = "REQUIRED", description = "When the line was written (UTC)." },
        { name = "service", type = "STRING", mode = "REQUIRED", description = "Service that wrote the line." },
        { name = "severity", type = "STRING", mode = "REQUIRED", description = "Cloud Logging severity (DEBUG, INFO, WARNING, ERROR, CRITICAL)." },
        { name = "message", type = "STRING", mode = "REQUIRED", description = "The log message, secrets redacted." },
        { name = "host", type = "STRING", mode = "NULLABLE", description = "Host or pod name." },
        { name = "environment", type = "STRING", mode = "NULLABLE", description = "Deployment environment (prod, staging, dev)." },
        { name = "logger", type = "STRING", mode = "NULLABLE", description = "Logger or module name." },
        { name = "trace_id", type = "STRING", mode = "NULLABLE", description = "Trace the line belongs to." },
        { name = "span_id", type = "STRING", mode = "NULLABLE", description = "Span the line belongs to." },
        { name = "latency_ms", type = "FLOAT", mode = "NULLABLE", description = "Request latency when the line reports one." },
        { name = "labels", type = "JSON", mode = "NULLABLE", description = "Free-form labels." },
        { name = "message_id", type = "STRING", mode = "REQUIRED", description = "Pub/Sub message id (row identity)." },
        { name = "ingest_time", type = "TIMESTAMP", mode = "NULLABLE", description = "When sluice received the message." },
      ]
    }
    health = {
      schema       = "health"
      partition_by = "timestamp"
      cluster_by   = ["service"]
      fields = [
        { name = "timestamp", type = "TIMESTAMP", mode = "REQUIRED", description = "When the report was made (UTC)." },
        { name = "service", type = "STRING", mode = "REQUIRED", description = "Reporting service." },
        { name = "instance", type = "STRING", mode = "NULLABLE", description = "Instance of the service (pod, VM)." },
        { name = "status", type = "STRING", mode = "REQUIRED", description = "heartbeat, healthy, degraded or unhealthy; late or down in rows sluice writes when a producer goes silent (instance sluice/<name>)." },
        { name = "latency_ms", type = "FLOAT", mode = "NULLABLE", description = "Latency the service measured for its own checks." },
        { name = "checks", type = "JSON", mode = "NULLABLE", description = "Individual check results." },
        { name = "version", type = "STRING", mode = "NULLABLE", description = "Version of the reporting service." },
        { name = "message_id", type = "STRING", mode = "REQUIRED", description = "Pub/Sub message id (row identity)." },
        { name = "ingest_time", type = "TIMESTAMP", mode = "NULLABLE", description = "When sluice received the message." },
      ]
    }
    config_changes = {
      schema       = "config_change"
      partition_by = "timestamp"
      cluster_by   = ["service", "key"]
      fields = [
        { name = "timestamp", type = "TIMESTAMP", mode = "REQUIRED", description = "When the change was made (UTC)." },
        { name = "service", type = "STRING", mode = "REQUIRED", description = "Service whose configuration changed." },
        { name = "key", type = "STRING", mode = "REQUIRED", description = "Configuration key." },
        { name = "old_value", type = "JSON", mode = "NULLABLE", description = "Value before the change." },
        { name = "new_value", type = "JSON", mode = "NULLABLE", description = "Value after the change." },
        { name = "version", type = "INTEGER", mode = "REQUIRED", description = "Monotonic version of the key; the highest wins." },
        { name = "author", type = "STRING", mode = "NULLABLE", description = "Who made the change." },
        { name = "reason", type = "STRING", mode = "NULLABLE", description = "Why the change was made." },
        { name = "message_id", type = "STRING", mode = "REQUIRED", description = "Pub/Sub message id (row identity)." },
        { name = "ingest_time", type = "TIMESTAMP", mode = "NULLABLE", description = "When sluice received the message." },
      ]
    }
  }
}
