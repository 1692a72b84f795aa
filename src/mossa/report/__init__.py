"""The report stage: the paper's figures on this run, readings from the numbers, report.html."""
