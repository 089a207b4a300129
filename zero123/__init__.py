"""zero123 stage package (imports only `data`)."""
