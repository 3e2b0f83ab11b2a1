"""Reading contact files: CSV and JSON Lines records, header mapping, cell conversion.

Shared by the file client (`audience import`) and the server-side import jobs.
"""
