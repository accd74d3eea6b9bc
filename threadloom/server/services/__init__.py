"""The service layer: what each route means, over the ``Storage`` interface."""
