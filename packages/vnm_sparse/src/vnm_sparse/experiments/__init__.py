"""The paper's experiments at CPU scale (used by :mod:`vnm_sparse.reproduce` and ``python -m vnm_sparse``)."""
