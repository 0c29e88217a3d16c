"""apitokenproxy: an API-token authentication gateway for Jira and Confluence Data Center."""

__version__ = "0.1.0"
