"""Real peers for the interop tests and benchmarks: Tomcat 10, Apache httpd + mod_jk, redis.

Each is started by hand on free loopback ports (never through systemd) and stopped by its
pid; ``tests/conftest.py`` has the fixtures that start them for a test.
"""
