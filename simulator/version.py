"""capsim's version, as installed (a leaf: the report reads it without importing the package's
public API, which imports the report)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("capsim")
except PackageNotFoundError:  # a source tree that was not installed
    __version__ = "0+unknown"
