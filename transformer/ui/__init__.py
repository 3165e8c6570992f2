"""The web page at ``/ui``: live sources, the last day's events, threshold tuning and a recording tried
(routes, live snapshots, the bounded store of window scores, the lifecycle replay, access control)."""
