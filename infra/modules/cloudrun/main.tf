# sluice on Cloud Run: the service (streaming pull with always-on CPU, or push with request-driven
# autoscaling), a job that runs `sluice replay` one-off, started by the Workflows workflow, and a
# job per pipeline that runs `sluice compact`, started on a schedule.

resource "google_cloud_run_v2_service" "sluice" {
  project             = var.project
  name                = var.name
  location            = var.region
  labels              = var.labels
  ingress             = var.ingress
  deletion_protection = var.deletion_protection
  # Tokens for this audience are accepted besides the service URL, so the push subscriptions
  # (and sluice's own token check) need not know the URL, which exists only after the service.
  custom_audiences = var.custom_audiences

  template {
    service_account                  = var.service_account
    timeout                          = "${var.request_timeout_seconds}s"
    max_instance_request_concurrency = var.concurrency

    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }

    containers {
      image = var.image
      args  = ["run"]

      ports {
        container_port = var.port
      }

      dynamic "env" {
        for_each = var.env
        content {
          name  = env.key
          value = env.value
        }
      }

      resources {
        limits = {
          cpu    = var.cpu
          memory = var.memory
        }
        # Streaming pull works between requests: it needs the CPU always allocated.
        cpu_idle          = var.cpu_idle
        startup_cpu_boost = true
      }

      startup_probe {
        period_seconds    = 2
        failure_threshold = 30
        http_get {
          path = "/readyz"
          port = var.port
        }
      }

      liveness_probe {
        period_seconds    = 15
        failure_threshold = 4
        http_get {
          path = "/healthz"
          port = var.port
        }
      }
    }
  }
}

# Who may call the service: the push subscriptions' service account. Nobody else, so the push
# endpoint is reachable only with a Google-signed token for that account.
resource "google_cloud_run_v2_service_iam_member" "invoker" {
  for_each = var.invokers
  project  = var.project
  location = var.region
  name     = google_cloud_run_v2_service.sluice.name
  role     = "roles/run.invoker"
  member   = each.value
}

# The jobs: `sluice replay` (arguments given per execution by the workflow; it resumes from its
# checkpoints, so a retried task continues where it stopped), and `sluice compact -p <pipeline>`
# per pipeline (one task, and a timeout that with the retry ends before the next scheduled run,
# so runs never overlap; a retry first finishes the merge a failed attempt left).
locals {
  jobs = merge(
    {
      replay = {
        name            = "${var.name}-replay"
        args            = ["replay", "--help"]
        env             = merge(var.env, var.replay_env)
        service_account = var.replay_service_account
        timeout_seconds = var.replay_timeout_seconds
        max_retries     = 3
        cpu             = var.replay_cpu
        memory          = var.replay_memory
      }
    },
    {
      for p, _ in var.compact_pipelines : "compact-${p}" => {
        name            = "${var.name}-compact-${p}"
        args            = concat(["compact", "--pipeline", p], var.compact_args)
        env             = var.env
        service_account = var.compact_service_account
        timeout_seconds = var.compact_timeout_seconds
        max_retries     = var.compact_max_retries
        cpu             = var.compact_cpu
        memory          = var.compact_memory
      }
    },
  )
}

resource "google_cloud_run_v2_job" "job" {
  for_each            = local.jobs
  project             = var.project
  name                = each.value.name
  location            = var.region
  labels              = var.labels
  deletion_protection = var.deletion_protection

  template {
    task_count  = 1
    parallelism = 1

    template {
      service_account = each.value.service_account
      timeout         = "${each.value.timeout_seconds}s"
      max_retries     = each.value.max_retries

      containers {
        image = var.image
        args  = each.value.args

        dynamic "env" {
          for_each = each.value.env
          content {
            name  = env.key
            value = env.value
          }
        }

        resources {
          limits = {
            cpu    = each.value.cpu
            memory = each.value.memory
          }
        }
      }
    }
  }
}

moved {
  from = google_cloud_run_v2_job.replay
  to   = google_cloud_run_v2_job.job["replay"]
}

# Who may start replays with their own arguments (the workflow).
resource "google_cloud_run_v2_job_iam_member" "replay_runner" {
  for_each = var.replay_runners
  project  = var.project
  location = var.region
  name     = google_cloud_run_v2_job.job["replay"].name
  role     = "roles/run.developer"
  member   = each.value
}

# Who may start the compaction jobs as they are (the scheduler): run.invoker, no overrides.
resource "google_cloud_run_v2_job_iam_member" "compact_runner" {
  for_each = {
    for pair in setproduct(keys(var.compact_pipelines), keys(var.compact_runners)) :
    "${pair[0]}-${pair[1]}" => { job = pair[0], member = var.compact_runners[pair[1]] }
  }
  project  = var.project
  location = var.region
  name     = google_cloud_run_v2_job.job["compact-${each.value.job}"].name
  role     = "roles/run.invoker"
  member   = each.value.member
}
