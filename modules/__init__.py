"""Modules bundled with pyhttpd, loaded with LoadModule like httpd's modules/*.so."""
