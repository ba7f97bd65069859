"""A real Tomcat 10 with its own CATALINA_BASE, an HTTP and an AJP/1.3 connector on loopback."""

from __future__ import annotations

import http.client
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from xml.sax.saxutils import quoteattr

from tests.peers.peer import Peer
from tests.peers.ports import free_port, wait_for_port

CATALINA_HOME = Path("/usr/share/tomcat10")
CATALINA_SH = CATALINA_HOME / "bin" / "catalina.sh"
EXAMPLES_APP = Path("/usr/share/tomcat10-examples/examples")
TEST_WEBAPP = Path(__file__).parent / "webapp"
#: Every logger to the console, so catalina.out alone tells the whole story.
LOGGING_PROPERTIES = """\
handlers = java.util.logging.ConsoleHandler
.handlers = java.util.logging.ConsoleHandler
java.util.logging.ConsoleHandler.level = FINE
java.util.logging.ConsoleHandler.formatter = org.apache.juli.OneLineFormatter
java.util.logging.ConsoleHandler.encoding = UTF-8
"""
#: The page whose 200 over HTTP says Tomcat is ready (it also compiles that JSP).
READY_PAGE = "info.jsp"


class Tomcat(Peer):
    """A Tomcat 10 serving the test webapp (tests/peers/webapp) at ``context_path``.

    ``route`` becomes the Engine's ``jvmRoute`` (the suffix of session ids) and the
    ``pyhttpd.node`` system property the test pages print as ``node=``. The AJP connector
    requires ``ajp_secret`` when given and has ``secretRequired="false"`` otherwise;
    ``ajp_attributes`` adds or overrides attributes of that connector (``packetSize``,
    ``tomcatAuthentication``, ``allowedRequestAttributesPattern``...). ``max_threads`` sizes
    both connectors. ``engine_xml`` is inserted inside ``<Engine>`` (a ``<Cluster>``, say).
    ``examples`` also deploys tomcat10-examples at ``/examples``.
    """

    name = "catalina"

    def __init__(
        self,
        route: str | None = "node1",
        ajp_secret: str | None = None,
        *,
        context_path: str = "/",
        examples: bool = False,
        max_threads: int | None = None,
        ajp_attributes: Mapping[str, str] | None = None,
        engine_xml: str = "",
        java_opts: Sequence[str] = (),
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        if context_path != "/" and (not context_path.startswith("/") or context_path.endswith("/")):
            raise ValueError(f"context_path must be '/' or '/name', not {context_path!r}")
        super().__init__(workdir)
        self.route = route
        self.ajp_secret = ajp_secret
        self.context_path = context_path
        self.examples = examples
        self.max_threads = max_threads
        self.ajp_attributes = dict(ajp_attributes or {})
        self.engine_xml = engine_xml
        self.java_opts = list(java_opts)
        self.host = "127.0.0.1"
        self.http_port = free_port(self.host)
        self.ajp_port = free_port(self.host)

    def path(self, page: str = "") -> str:
        """The request path of ``page`` of the test webapp (``info.jsp`` -> ``/test/info.jsp``)."""
        prefix = "" if self.context_path == "/" else self.context_path
        return f"{prefix}/{page}"

    def url(self, page: str = "") -> str:
        """The HTTP connector's URL of ``page`` of the test webapp."""
        return f"http://{self.host}:{self.http_port}{self.path(page)}"

    def server_xml(self) -> str:
        """The conf/server.xml this Tomcat runs with."""
        sizing = {} if self.max_threads is None else {"maxThreads": str(self.max_threads)}
        http = {
            "port": str(self.http_port),
            "address": self.host,
            "protocol": "HTTP/1.1",
            "connectionTimeout": "20000",
            **sizing,
        }
        ajp = {"port": str(self.ajp_port), "address": self.host, "protocol": "AJP/1.3", **sizing}
        if self.ajp_secret is None:
            ajp["secretRequired"] = "false"
        else:
            ajp["secret"] = self.ajp_secret
        ajp.update(self.ajp_attributes)
        route = "" if self.route is None else f" jvmRoute={quoteattr(self.route)}"
        return f"""<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <Service name="Catalina">
    <Connector {_attributes(http)}/>
    <Connector {_attributes(ajp)}/>
    <Engine name="Catalina" defaultHost="localhost"{route}>
      {self.engine_xml}
      <Host name="localhost" appBase="webapps" unpackWARs="false" autoDeploy="false"/>
    </Engine>
  </Service>
</Server>
"""

    def prepare(self) -> None:
        conf = self.base / "conf"
        shutil.copytree(CATALINA_HOME / "etc", conf, dirs_exist_ok=True)
        for name in ("temp", "work", "webapps"):
            (self.base / name).mkdir(exist_ok=True)
        (conf / "server.xml").write_text(self.server_xml(), encoding="utf-8")
        (conf / "logging.properties").write_text(LOGGING_PROPERTIES, encoding="utf-8")
        app_dir = "ROOT" if self.context_path == "/" else self.context_path.lstrip("/")
        shutil.copytree(TEST_WEBAPP, self.base / "webapps" / app_dir)
        if self.examples:
            (self.base / "webapps" / "examples").symlink_to(EXAMPLES_APP)

    def command(self) -> list[str]:
        return [str(CATALINA_SH), "run"]

    def environment(self) -> dict[str, str]:
        java_opts = [
            "-Xms64m",
            "-Xmx512m",
            "-Djava.awt.headless=true",
            "-Djava.security.egd=file:/dev/./urandom",
        ]
        if self.route is not None:
            java_opts.append(f"-Dpyhttpd.node={self.route}")
        env = dict(os.environ)
        env.update(
            CATALINA_HOME=str(CATALINA_HOME),
            CATALINA_BASE=str(self.base),
            CATALINA_TMPDIR=str(self.base / "temp"),
            JAVA_OPTS=" ".join(java_opts + self.java_opts),
        )
        return env

    def wait_ready(self, deadline: float) -> None:
        wait_for_port(self.host, self.ajp_port, deadline - time.monotonic(), self._process)
        path = self.path(READY_PAGE)
        while (status := _get_status(self.host, self.http_port, path, deadline)) is None:
            if self._process.poll() is not None:
                raise RuntimeError(f"exited with {self._process.returncode}")
            time.sleep(0.1)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}, not 200")


def _attributes(values: Mapping[str, str]) -> str:
    return " ".join(f"{name}={quoteattr(value)}" for name, value in values.items())


def _get_status(host: str, port: int, path: str, deadline: float) -> int | None:
    """Status of GET ``path``, or None when the connector does not answer yet."""
    timeout = deadline - time.monotonic()
    if timeout <= 0:
        raise TimeoutError(f"GET {path} got no answer in time")
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        connection.close()
