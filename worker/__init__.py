"""The arq workers: the export job, the expiry sweep, and their start-up and shut-down."""
