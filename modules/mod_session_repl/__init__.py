"""mod_session_repl: HTTP sessions for hosted applications, replicated across the cluster."""

from .module import session_repl_module

__all__ = ["session_repl_module"]
