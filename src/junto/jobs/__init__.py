"""Durable background jobs: a queue in the database, worker processes that run handlers.

`queue` stores and hands out jobs, `context` is what a handler gets, `registry` maps a job's
kind to its handler, `worker` runs them, `supervisor` keeps a node's worker processes alive.
"""
