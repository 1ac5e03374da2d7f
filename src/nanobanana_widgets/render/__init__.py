"""Pure functions from data to HTML, and the stylesheets: what every view shows.

Live widgets and static renditions both use them. They import no widget and no store:
records, results and rows are recognised by what they have (duck types).
"""
