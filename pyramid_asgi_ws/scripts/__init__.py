"""Console scripts, siblings of Pyramid's ``pyramid.scripts``."""
