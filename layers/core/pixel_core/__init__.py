"""pixel_core: the Pixel Gateway's shared package (models, domain rules, auth, config, observability).

Shipped to every function in the core Lambda layer; tests import it through pytest's pythonpath.
"""
