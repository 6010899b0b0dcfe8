"""`synthgen report`: one self-contained HTML file that shows a dataset (or several side by side).

collect.py reads each input in one streaming pass, sample.py bounds what the example browser holds,
charts.py draws with matplotlib, sections.py says what each section shows, page.py assembles the
file from the template, stylesheet and script in static/, and build.py runs them in turn.
"""
