"""pyhttpd: a pre-fork web server modelled on Apache httpd's worker MPM."""

__version__ = "0.1.0"
SERVER_BASEPRODUCT = "pyhttpd"
