# sluice on Google Cloud: Pub/Sub in, the lake bucket and BigQuery out, the Cloud Run service,
# a Cloud Run replay job run by a workflow, a compaction job per pipeline run by Cloud Scheduler,
# and one service account per role with only the permissions that role needs, each granted on
# the resource rather than the project.

data "google_project" "this" {
  project_id = var.project
}

resource "google_project_service" "api" {
  for_each = toset([
    "bigquery.googleapis.com",
    "bigquerystorage.googleapis.com",
    "cloudscheduler.googleapis.com",
    "iam.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "storage.googleapis.com",
    "workflows.googleapis.com",
  ])
  project            = var.project
  service            = each.key
  disable_on_destroy = false
}

# Service accounts. Emails are spelled out from the account ids so that the IAM bindings below
# are known at plan time.
locals {
  accounts = {
    run       = "${var.service_name}-run"
    push      = "${var.service_name}-push"
    replay    = "${var.service_name}-replay"
    workflow  = "${var.service_name}-workflow"
    compact   = "${var.service_name}-compact"
    scheduler = "${var.service_name}-scheduler"
  }
  emails  = { for k, id in local.accounts : k => "${id}@${var.project}.iam.gserviceaccount.com" }
  members = { for k, sa in google_service_account.sa : k => "serviceAccount:${sa.email}" }
}

resource "google_service_account" "sa" {
  for_each     = local.accounts
  project      = var.project
  account_id   = each.value
  display_name = "sluice ${each.key}"
  depends_on   = [google_project_service.api]
}

module "gcs" {
  source              = "./modules/gcs"
  project             = var.project
  name                = var.lake_bucket
  location            = coalesce(var.lake_location, var.region)
  lake_prefix         = local.lake_prefix
  dead_letters_prefix = local.dead_letters_prefix
  replay_prefix       = local.replay_prefix
  retention_days      = var.lake_retention_days
  labels              = var.labels

  dead_letter_retention_days = var.dead_letter_retention_days

  # sluice writes objects and reads the lake back (state rebuilt after a restart); replay reads
  # the archive and writes only under replay_prefix; compaction replaces objects under lake_prefix.
  object_users   = { run = local.members.run }
  object_viewers = { replay = local.members.replay, compact = local.members.compact }
  replay_writers = { replay = local.members.replay }
  compact_users  = { compact = local.members.compact }

  depends_on = [google_project_service.api]
}

module "bigquery" {
  source              = "./modules/bigquery"
  project             = var.project
  dataset             = local.dataset
  location            = var.bigquery_location
  tables              = local.tables
  deletion_protection = var.deletion_protection
  labels              = var.labels
  data_editors        = { run = local.members.run, replay = local.members.replay }

  depends_on = [google_project_service.api]
}

module "cloudrun" {
  source                 = "./modules/cloudrun"
  project                = var.project
  region                 = var.region
  name                   = var.service_name
  image                  = var.image
  port                   = local.port
  env                    = local.service_env
  replay_env             = local.replay_env
  service_account        = local.emails.run
  replay_service_account = local.emails.replay
  cpu                    = var.cpu
  memory                 = var.memory
  max_instances          = var.max_instances
  concurrency            = var.push_concurrency
  deletion_protection    = var.deletion_protection
  labels                 = var.labels

  # Pull works between requests: CPU always on and instances kept warm. Push scales on requests.
  min_instances = var.delivery == "pull" ? var.min_instances : 0
  cpu_idle      = var.delivery == "push"

  custom_audiences = [local.push_audience]
  invokers         = { for k, m in { push = local.members.push } : k => m if var.delivery == "push" }
  replay_runners   = { workflow = local.members.workflow }

  compact_pipelines       = local.pipelines
  compact_args            = ["--since", local.compact.since, "--target-size", local.compact.target_size]
  compact_timeout_seconds = local.compact.timeout_seconds
  compact_max_retries     = local.compact.max_retries
  compact_service_account = local.emails.compact
  compact_runners         = { scheduler = local.members.scheduler }

  depends_on = [google_service_account.sa]
}

module "scheduler" {
  source          = "./modules/scheduler"
  project         = var.project
  region          = var.region
  jobs            = module.cloudrun.compact_jobs
  schedule        = local.compact.schedule
  service_account = local.emails.scheduler

  depends_on = [google_project_service.api, google_service_account.sa]
}

module "pubsub" {
  source                = "./modules/pubsub"
  project               = var.project
  project_number        = data.google_project.this.number
  pipelines             = local.pipelines
  delivery              = var.delivery
  dead_letter_topic     = local.dead_letter_topic
  max_delivery_attempts = local.max_delivery_attempts
  ack_deadline_seconds  = local.ack_deadline_seconds
  labels                = var.labels

  push_url             = module.cloudrun.url
  push_audience        = local.push_audience
  push_service_account = local.emails.push
  consumer_member      = local.members.run
  publisher_members    = { replay = local.members.replay }

  # push_service_account is an email spelled out, not a reference: wait for the accounts.
  depends_on = [google_project_service.api, google_service_account.sa]
}

module "workflows" {
  source          = "./modules/workflows"
  project         = var.project
  region          = var.region
  name            = "${var.service_name}-replay"
  replay_job      = module.cloudrun.replay_job
  service_account = local.emails.workflow
  labels          = var.labels

  deletion_protection = var.deletion_protection

  depends_on = [google_service_account.sa]
}

# Replay, and the service in exactly_once mode (redelivered rows), ask BigQuery which message
# ids a table already has before appending: a query job.
resource "google_project_iam_member" "bigquery_jobs" {
  for_each = toset(["run", "replay"])
  project  = var.project
  role     = "roles/bigquery.jobUser"
  member   = local.members[each.key]
}

# The workflow waits on the job's long-running operation (run.operations.get, which has no
# per-job grant) and writes its call log.
resource "google_project_iam_member" "workflow" {
  for_each = toset(["roles/run.viewer", "roles/logging.logWriter"])
  project  = var.project
  role     = each.key
  member   = local.members.workflow
}
