"""Named-entity recognition (task: token-classification): token batches, BIO tags, their validation."""
