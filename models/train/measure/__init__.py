"""Measuring kinema-tiny: an attribute classifier trained on rendered clips, and the metrics the
eval command prints (models/train/README.md, "Measuring the model")."""
