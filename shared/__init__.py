"""Contracts and plumbing shared by the three services.

Nothing here knows one service's domain: settings, event models and their
envelope, the RabbitMQ bus and outbox relay, clients for MongoDB,
Elasticsearch and MinIO, logging, metrics and HTTP plumbing.
"""
