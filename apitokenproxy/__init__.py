"""apitokenproxy: an API-token authentication gateway for Jira and Confluence Data Center."""

# The one place the version is written: pyproject.toml and `--version` read it here.
__version__ = "0.1.0"
