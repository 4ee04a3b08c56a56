"""Human review: a small web app over the review queue, its append-only decision log, and
``apply-reviews``, which merges decisions into curated tables."""
