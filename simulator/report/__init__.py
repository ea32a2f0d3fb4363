"""The report stage: metrics over a run's records, the JSON report (`build`), terminal
tables (`tables`) and the HTML report with its plots (`html`, `html_tables`). It reads
results and the scenario; it never reaches back into the engine's state."""
