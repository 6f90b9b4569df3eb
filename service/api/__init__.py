"""HTTP routes, one blueprint per resource. Each route parses, calls the core, formats."""

from flask import Flask

from service.api import diagnostics, docs, health, jobs, models, references, ui, v2


def register_blueprints(app: Flask) -> None:
    for module in (health, models, references, diagnostics, jobs, v2, docs, ui):
        app.register_blueprint(module.blueprint)
