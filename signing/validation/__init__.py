"""Validation of signed PDFs and edXML packages, and the reports it makes."""
