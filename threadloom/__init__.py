"""threadloom package."""
