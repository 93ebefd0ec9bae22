"""Fine-tuning (LoRA SFT) and generation."""
