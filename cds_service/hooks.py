"""Placeholder for POST /cds-services/{id} (being written now)."""
from flask import Blueprint
bp = Blueprint("hooks", __name__)
