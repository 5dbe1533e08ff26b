output "workflow" {
  value = google_workflows_workflow.replay.id
}
