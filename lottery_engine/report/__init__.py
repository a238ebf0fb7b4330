"""Figures and tables of one run and across runs, and the report.html that stands alone. No
TensorFlow here."""
