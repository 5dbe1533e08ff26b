output "topics" {
  description = "Topic ids by name."
  value       = { for k, t in google_pubsub_topic.pipeline : k => t.id }
}

output "subscriptions" {
  description = "Subscription ids by pipeline."
  value       = { for k, s in google_pubsub_subscription.pipeline : k => s.id }
}

output "dead_letter_topic" {
  value = google_pubsub_topic.dead_letters.id
}
