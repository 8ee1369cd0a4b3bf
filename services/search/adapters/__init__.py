"""Search's adapters: the Elasticsearch index and the read-only view of MongoDB."""
