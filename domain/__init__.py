"""The export and dataset domain shared by the web process (api/) and the workers (worker/):
settings, models and their state machines, Redis repositories, file storage and link signing."""
