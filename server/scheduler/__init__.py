"""Scheduled jobs: the registry of periodic work, the runner that lets exactly one process execute
each run (a unique row per job and scheduled time), the `fieldsync scheduler` command that drives
it with APScheduler, and the admin API listing runs. Jobs call services; this package never holds
business rules of its own.
"""
