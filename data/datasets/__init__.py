"""Training-data readers: each layout -> typed objects (cameras in the world frame, OpenCV axes)."""
