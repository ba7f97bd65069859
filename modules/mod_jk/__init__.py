"""mod_jk: AJP13 workers, the lb worker and the status worker, configured like Apache's mod_jk.

Loaded with ``LoadModule jk_module modules/mod_jk``.
"""

from .module import jk_module

__all__ = ["jk_module"]
