"""Placeholder for POST /cds-services/{id}/feedback (being written now)."""
from flask import Blueprint
bp = Blueprint("feedback", __name__)
