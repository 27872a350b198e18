"""Reports: the numbers of a run (``data``), charts as inline SVG (``charts``), and the HTML,
Markdown, CSV and JSON writers."""
