"""What the API and the CLI do, without HTTP: submit, route, deliver."""
