"""LoRA fine-tuning: the SFT adapter and the per-task control adapters of a run."""
