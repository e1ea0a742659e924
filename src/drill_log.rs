//! Appending one row to a runbook's "Drill log" Markdown table (issue #6). Not built yet.
