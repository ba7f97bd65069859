"""mod_session_repl: HTTP sessions for hosted applications, replicated across the cluster."""
