"""elevation stage package (imports only `data`)."""
