"""Spend: hourly rollups of `llm_requests`, the dashboard queries, forecasts and demo data.

`buckets.py` holds the fixed latency histogram every rollup row and percentile share.
"""
