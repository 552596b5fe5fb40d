"""Server-rendered console pages."""

from __future__ import annotations

from flask import Flask


def register_console(app: Flask) -> None:
    from .admin import bp as admin_bp
    from .auth import bp as auth_bp
    from .automation import bp as automation_bp
    from .cloud import bp as cloud_bp
    from .dr import bp as dr_bp
    from .main import bp as main_bp
    from .network import bp as network_bp
    from .reports import bp as reports_bp
    from .servicedesk import bp as servicedesk_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(main_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(network_bp)
    app.register_blueprint(reports_bp)
    app.register_blueprint(servicedesk_bp)
    app.register_blueprint(automation_bp)
    app.register_blueprint(dr_bp)
    app.register_blueprint(cloud_bp)
