"""The segmentflow service: Faust app, settings, CLI, codecs."""
