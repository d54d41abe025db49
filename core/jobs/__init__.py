"""Background jobs: records, the queue, executors (where jobs run) and the worker loop."""
