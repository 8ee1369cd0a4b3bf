"""Search: the Elasticsearch mirror of the searchable fields, and the queries on it."""
