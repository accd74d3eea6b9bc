"""The superstep runtime: plan tasks from a checkpoint, run them, apply their writes.

Internal: users reach it through ``threadloom.graph``. ``loop`` holds the algorithm as a
generator that asks for I/O; ``drivers`` performs that I/O synchronously or with asyncio.
"""
