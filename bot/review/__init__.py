"""The after-action review: figures from the stores, charts, the document, feedback."""
