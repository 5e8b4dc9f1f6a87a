"""Models, datasets from shards, rewards, prompt samplers, SFT / GRPO entry points, evaluation."""
