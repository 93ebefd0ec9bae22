"""Selection methods: the registry (`registry`) and its built-in entries (`methods`), which
importing this package registers."""
from . import methods  # noqa: F401  (registers the built-in methods)
