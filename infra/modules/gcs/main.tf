# The lake bucket: Parquet files under <lake_prefix>/<pipeline>/dt=/hour=, dead letters under
# <lake_prefix>/<dead_letters>/. sluice writes each object once under a new name and reads the lake
# back (state rebuilt after a restart).

resource "google_storage_bucket" "lake" {
  project                     = var.project
  name                        = var.name
  location                    = var.location
  labels                      = var.labels
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  # Lake files are immutable; versioning would only keep deleted ones around.
  versioning {
    enabled = false
  }

  # Cheaper storage as partitions age: queries mostly read recent days.
  lifecycle_rule {
    condition {
      age            = var.nearline_after_days
      matches_prefix = ["${var.lake_prefix}/"]
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }

  lifecycle_rule {
    condition {
      age            = var.coldline_after_days
      matches_prefix = ["${var.lake_prefix}/"]
    }
    action {
      type          = "SetStorageClass"
      storage_class = "COLDLINE"
    }
  }

  dynamic "lifecycle_rule" {
    for_each = var.retention_days == null ? [] : [var.retention_days]
    content {
      condition {
        age            = lifecycle_rule.value
        matches_prefix = ["${var.lake_prefix}/"]
      }
      action {
        type = "Delete"
      }
    }
  }

  # Dead letters are kept long enough to inspect and replay, then dropped.
  lifecycle_rule {
    condition {
      age            = var.dead_letter_retention_days
      matches_prefix = [var.dead_letters_prefix]
    }
    action {
      type = "Delete"
    }
  }

  # Replay output and checkpoints are scratch space.
  lifecycle_rule {
    condition {
      age            = var.replay_retention_days
      matches_prefix = [var.replay_prefix]
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      age = 1
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }
}

# objectUser, not objectCreator: a put retried after a lost response replaces the object its first
# attempt already wrote, which needs storage.objects.delete. No bucket or IAM administration.
resource "google_storage_bucket_iam_member" "object_user" {
  for_each = var.object_users
  bucket   = google_storage_bucket.lake.name
  role     = "roles/storage.objectUser"
  member   = each.value
}

resource "google_storage_bucket_iam_member" "object_viewer" {
  for_each = var.object_viewers
  bucket   = google_storage_bucket.lake.name
  role     = "roles/storage.objectViewer"
  member   = each.value
}

# Replay rewrites its checkpoints, so it may also overwrite and delete, but only under replay_prefix.
resource "google_storage_bucket_iam_member" "replay_user" {
  for_each = var.replay_writers
  bucket   = google_storage_bucket.lake.name
  role     = "roles/storage.objectUser"
  member   = each.value

  condition {
    title       = "replay-prefix-only"
    description = "Objects under ${var.replay_prefix} only."
    expression  = "resource.name.startsWith(\"projects/_/buckets/${var.name}/objects/${var.replay_prefix}\")"
  }
}

# Compaction writes merged objects and deletes their inputs (and its manifests under
# <lake_prefix>/_sluice/compact/, its lock under <lake_prefix>/_locks/compact/), so it may create
# and delete, but only under lake_prefix; it
# lists and reads through object_viewers.
resource "google_storage_bucket_iam_member" "compact_user" {
  for_each = var.compact_users
  bucket   = google_storage_bucket.lake.name
  role     = "roles/storage.objectUser"
  member   = each.value

  condition {
    title       = "lake-prefix-only"
    description = "Objects under ${var.lake_prefix}/ only."
    expression  = "resource.name.startsWith(\"projects/_/buckets/${var.name}/objects/${var.lake_prefix}/\")"
  }
}
