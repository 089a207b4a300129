"""Zero123 fine-tuning: LightningModule around the pure modules, EMA, initialisation, ``run_training``."""
