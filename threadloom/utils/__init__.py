"""``langgraph.utils``: the older home of a few helpers, kept for the libraries that import
them from there (``utils.runnable``, ``utils.config``). The helpers live elsewhere in
threadloom; these modules only re-export them.
"""
