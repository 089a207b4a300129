"""reconstruction stage package (imports only `data`)."""
