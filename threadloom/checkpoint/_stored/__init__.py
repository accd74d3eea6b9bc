"""What every saver does with its stored records, whatever holds them (private).

``records``: a checkpoint's address, its metadata as JSON, list filters, which checkpoints
a prune drops; ``shape``: checks that a decoded row has the shape the engine trusts;
``inline``: the small values a checkpoint's row carries itself (the SQL savers);
``auditcodec``: how an audit record is stored (JSON text, sealed when the serializer
encrypts). The memory saver and the SQL savers both build on these, so neither has to
borrow the other's internals.
"""
