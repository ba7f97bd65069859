"""mod_jk: AJP13 workers, the lb worker and the status worker, configured like Apache's mod_jk."""
