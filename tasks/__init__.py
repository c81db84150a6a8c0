"""Prefect tasks: thin wrappers over ``benchmark`` (see ``tasks.stages``)."""
