"""Datasets for training, read from a running Image Corpus over its HTTP APIs.

:class:`~services.datasets.detection.CorpusDetection` is a map-style dataset:
it has ``__len__`` and ``__getitem__``, which is all PyTorch's ``DataLoader``
asks of one, so it needs no PyTorch to import or to test. The DataLoader's
default collate function turns its NumPy arrays into tensors.
"""
