# Cloud Monitoring alert policies for the alerts docs/operations.md lists. sluice's own ones are
# PromQL over its /metrics, scraped by Google Cloud Managed Service for Prometheus (a sidecar on
# Cloud Run); the Google Cloud ones are PromQL over Cloud Monitoring's Pub/Sub and Cloud Run metrics.
# tests/operations_doc.rs holds every expression here to the doc and every sluice metric to /metrics.

locals {
  # name => the doc's expression, how long it must hold, and what to look at.
  alert_policies = {
    "sluice-unhealthy" = {
      query    = "sluice_healthy == 0"
      duration = "120s"
      why      = "a stream stalled or a sink keeps failing (see the runbook)"
    }
    "sluice-not-ready" = {
      query    = "sluice_ready == 0"
      duration = "300s"
      why      = "sources disconnected or sinks not writable"
    }
    "sink-failing" = {
      query    = "sum by (pipeline, sink, kind) (rate(sluice_sink_errors_total[5m])) > 0"
      duration = "600s"
      why      = "GCS or BigQuery refusing writes; `kind` says how"
    }
    "messages-nacked" = {
      query    = "sum by (pipeline) (rate(sluice_nacks_total[5m])) > 0"
      duration = "600s"
      why      = "events are being redelivered instead of written"
    }
    "dead-letters-rising" = {
      query    = "sum by (pipeline) (rate(sluice_events_dead_lettered_total[15m])) / sum by (pipeline) (rate(sluice_events_in_total[15m])) > 0.01"
      duration = "900s"
      why      = "producers send events that do not fit the schema"
    }
    "falling-behind" = {
      query    = "max by (pipeline) (sluice_lag_seconds) > 300"
      duration = "600s"
      why      = "events arrive more than 5 minutes after publish: scale out"
    }
    "at-the-flow-control-bound" = {
      query    = "max by (subscription) (sluice_outstanding_bytes) > 0.9 * 104857600"
      duration = "900s"
      why      = "sinks are slower than input; scale out or look at the sinks"
    }
    "push-at-its-flow-control-bound" = {
      query    = "max by (pipeline) (sluice_outstanding_messages{subscription=\"push\"}) > 0.9 * 1000"
      duration = "900s"
      why      = "pushes are about to be answered 429; scale out (`max_instances`) or look at the sinks"
    }
    "pushes-refused" = {
      query    = "sum by (pipeline, status) (rate(sluice_push_refusals_total[5m])) > 1"
      duration = "900s"
      why      = "429: at the flow-control bound (above); 401/403: a push subscription's token or account does not match `push_auth`; 400/413: a producer sends what is not a push envelope, or too much; 503: sinks failing"
    }
    "no-flush" = {
      query    = "time() - max by (pipeline, sink) (sluice_last_flush_timestamp_seconds) > 600 and on (pipeline) sum by (pipeline) (rate(sluice_events_in_total[10m])) > 0"
      duration = "300s"
      why      = "events come in but nothing is written"
    }
    "slow-flushes" = {
      query    = "histogram_quantile(0.99, sum by (le, sink) (rate(sluice_flush_duration_seconds_bucket[10m]))) > 30"
      duration = "900s"
      why      = "a sink is slow; pushes wait on it"
    }
    "stream-restarts" = {
      query    = "sum by (subscription) (increase(sluice_stream_restarts_total[30m])) > 3"
      duration = "0s"
      why      = "streaming pulls keep stalling"
    }
    "backlog-ageing" = {
      query    = "max by (subscription_id) (pubsub_googleapis_com:subscription_oldest_unacked_message_age{subscription_id=~\".*-sluice\"}) > 600"
      duration = "0s"
      why      = "Pub/Sub holds a message older than 10 minutes: sluice is not keeping up, or a message keeps failing"
    }
    "backlog-growing" = {
      query    = "sum by (subscription_id) (deriv(pubsub_googleapis_com:subscription_num_undelivered_messages{subscription_id=~\".*-sluice\"}[10m])) > 0"
      duration = "1800s"
      why      = "the backlog has grown for 30 minutes: scale out"
    }
    "pubsub-dead-letters" = {
      query    = "max(pubsub_googleapis_com:subscription_num_undelivered_messages{subscription_id=\"sluice-dead-letters-hold\"}) > 0"
      duration = "0s"
      why      = "Pub/Sub gave up on messages after max_delivery_attempts; see the runbook"
    }
    "push-errors" = {
      query    = "sum(rate(run_googleapis_com:request_count{monitored_resource=\"cloud_run_revision\",response_code_class=\"5xx\"}[5m])) / sum(rate(run_googleapis_com:request_count{monitored_resource=\"cloud_run_revision\"}[5m])) > 0.01"
      duration = "300s"
      why      = "more than 1% of requests to the service answered 5xx"
    }
  }
}

resource "google_monitoring_alert_policy" "sluice" {
  for_each     = local.alert_policies
  project      = var.project
  display_name = "${var.service_name}: ${each.key}"
  combiner     = "OR"
  conditions {
    display_name = each.key
    condition_prometheus_query_language {
      query               = each.value.query
      duration            = each.value.duration
      evaluation_interval = "60s"
    }
  }
  documentation {
    content   = "${each.value.why}. Runbook: docs/operations.md in the sluice repository."
    mime_type = "text/markdown"
  }
  notification_channels = var.alert_notification_channels
  depends_on            = [google_project_service.api]
}
