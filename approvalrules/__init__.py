"""approvalrules: B2B order-approval rules as data.

The engine (load -> validate -> compile -> evaluate -> diff) lives in this
package's plain modules and imports neither Pyramid nor a database; see
``approvalrules.engine`` for its public face.
"""

__version__ = "0.1.0"
