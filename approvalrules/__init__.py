"""approvalrules: B2B order-approval rules as data.

The engine (load -> validate -> compile -> evaluate -> diff) lives in this
package's plain modules and imports neither Pyramid nor a database; see
``approvalrules.engine`` for its public face.
"""

import warnings

# Pyramid still imports pkg_resources, whose deprecation notice would open the output of
# every `approvalrules` command; it concerns Pyramid's packaging, not the person running it.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

__version__ = "0.1.0"
