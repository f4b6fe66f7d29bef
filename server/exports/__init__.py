"""Supervisor exports: datasets as declarative column lists over streamed SQL rows, and formats
(CSV, XLSX, JSON Lines, ZIP, a paged JSON feed) as writers that consume them. Nothing here buffers
a whole dataset, and nothing here shows a sensitive value in clear without an audited reveal.
"""
