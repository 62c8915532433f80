"""grepq's version (the package's ``grepq.__version__``), in a module of its own so that every layer can read it
without importing the package's scoring API."""
__version__ = "0.1.0"
