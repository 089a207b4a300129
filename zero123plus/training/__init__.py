"""Zero123++ fine-tuning (InstantMesh's recipe): ``python train.py --config configs/train/zero123plus*.yaml``."""
