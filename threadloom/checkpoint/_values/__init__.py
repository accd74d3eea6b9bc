"""Channel values as the savers keep them, whatever the storage (private).

``delta`` plans what a ``put`` stores of a list that grew (only the appended items);
``chains`` rebuilds such values from stored rows; ``frozen`` makes the process-local
copies that ``cache.ValueCache`` hands out; ``history`` is what ``DeltaChannel`` reads to
rebuild its value. Used by the memory saver and the SQL savers alike, so nothing here
does I/O or knows a table.
"""
