"""The SQL savers' shared machinery, written once for SQLite and PostgreSQL (private).

``statements``: the ``Query``/``Batch`` vocabulary, the drivers that run an operation, the
dialects and table names. The operations, as generators of statements: ``read``
(``get_tuple``, ``list`` pages), ``write`` (``put``, ``put_writes``, ``settle``),
``housekeeping`` (schema migrations, deleting, pruning, copying and expiring threads), each
over the state of ``base`` and combined in ``core.SqlCore``. ``saver``: the public saver
methods over a sync or an async driver; ``audit``: the audit log table; ``reseal``: sealing
stored rows anew (``copy_thread`` under encryption, ``rekey``). The backends
(``checkpoint.sqlite``, ``checkpoint.postgres``) supply only a connection, a dialect and
how to run one operation.
"""
