"""Training of the reconstruction module: losses, schedules, ray sampling, samples, Lightning wrapper."""
