"""Multi-process end-to-end tests: worker and producer scripts run as real OS processes."""
