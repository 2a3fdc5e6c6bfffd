"""The service's knowledge as data (FHIR terminology artifacts and the YAML rulebook).

This file only makes the folder importable, so the wheel can ship it as
``cds_service.fhir_profiles`` and the service can find it with
``importlib.resources`` wherever it is installed.
"""
