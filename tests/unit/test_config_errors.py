"""Every kind of configuration error names the file, the line and the directive."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyhttpd.config import Config
from pyhttpd.conftree import ConfigError


def error_for(tmp_path: Path, text: str) -> ConfigError:
    path = tmp_path / "httpd.conf"
    path.write_text(f"ServerRoot {tmp_path}\n" + text)
    with pytest.raises(ConfigError) as e:
        Config.load(str(path))
    assert e.value.file == str(path)
    assert str(e.value).startswith(f"{path}:{e.value.line}: ")
    return e.value


@pytest.mark.parametrize(
    ("text", "line", "directive", "fragment"),
    [
        ("Listen 80\nListn 81\n", 3, "Listn", "Invalid command 'Listn'"),
        ("Timeout\n", 2, "Timeout", "takes 1 argument"),
        ("Timeout 1 2\n", 2, "Timeout", "takes 1 argument"),
        ("Timeout soon\n", 2, "Timeout", "'soon' is not a number"),
        ("KeepAlive maybe\n", 2, "KeepAlive", "must be On or Off"),
        ("MaxKeepAliveRequests -3\n", 2, "MaxKeepAliveRequests", "below the minimum"),
        ("Listen localhost\n", 2, "Listen", "Port must be specified"),
        ("Listen 80 gopher\n", 2, "Listen", "unknown protocol"),
        ("Listen 80\nListen 80\n", 3, "Listen", "multiple Listeners"),
        ("DocumentRoot /no/such/dir\n", 2, "DocumentRoot", "is not a directory"),
        ("LogLevel loud\n", 2, "LogLevel", "unknown level"),
        ("<VirtualHost *:80>\nStartServers 3\n</VirtualHost>\n", 3, "StartServers", "not allowed here"),
        ("<Location /x>\nListen 80\n</Location>\n", 3, "Listen", "not allowed here"),
        ("ServerAlias www.example.com\n", 2, "ServerAlias", "not allowed here"),
        ("<Location /a>\nSetHandler x\n", 2, "<Location>", "was not closed"),
        ("<Location /a>\n</Directory>\n", 3, "</Directory>", "Expected </Location>"),
        ("</Location>\n", 2, "</Location>", "without matching"),
        ("<Location /a\n</Location>\n", 2, "<Location>", "missing closing '>'"),
        ("<Location>\n</Location>\n", 2, "<Location>", "takes one argument"),
        ("<LocationMatch (unclosed>\n</LocationMatch>\n", 2, "<LocationMatch>", "Regex could not be compiled"),
        ("<Location /a>\n<Location /b>\n</Location>\n</Location>\n", 3, "<Location>", "cannot occur within"),
        ("<VirtualHost *:80>\n<VirtualHost *:81>\n</VirtualHost>\n</VirtualHost>\n", 3, "<VirtualHost>", "cannot occur within"),
        ("<Bogus x>\n</Bogus>\n", 2, "<Bogus>", "Invalid command '<Bogus>'"),
        ("LoadModule x_module modules/mod_nonexistent\n", 2, "LoadModule", "Cannot load"),
        ("LoadModule wrong_module {examples}/mod_hello.py\n", 2, "LoadModule", "Can't locate API module structure"),
        ("ServerRoot /no/such/root\n", 2, "ServerRoot", "must be a valid directory"),
        ("Include missing.conf\n", 2, "Include", "could not open"),
        ('ServerName "unterminated\n', 2, "ServerName", "missing closing"),
        ("ErrorDocument 200 /x\n", 2, "ErrorDocument", "below the minimum"),
        ("Options +Sideways\n", 2, "Options", "Illegal option"),
    ],
)
def test_error_names_file_line_and_directive(tmp_path, text, line, directive, fragment):
    examples = Path(__file__).resolve().parents[2] / "examples"
    e = error_for(tmp_path, text.replace("{examples}", str(examples)))
    assert (e.line, e.directive) == (line, directive)
    assert fragment in e.message


def test_missing_config_file_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="could not open configuration file"):
        Config.load(str(tmp_path / "absent.conf"))
