"""Annotation: the label taxonomy, versioned annotations, users and roles."""
