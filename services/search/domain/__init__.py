"""Search's domain: the search document and query building, pure functions."""
