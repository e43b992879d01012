"""Insights (issue #15): the per-segment hourly series of membership
changes, folded from the membership-changes topic into a RocksDB store
under the worker's data directory (docs/insights.md).

- ``series``: the fold (sequence filter, transitions, causes) and the
  series' points, pure;
- ``store``: the series on disk, with the offsets folded, in one write batch;
- ``fold``: the aiokafka consumer that keeps the store up to date.
"""
