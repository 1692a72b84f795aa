"""What a model computes on prompts: hidden states at every layer, generated answers, and
the task metrics that score them (library code; the pipeline stages call it)."""
