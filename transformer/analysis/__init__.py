"""One recording's analysis: embeddings -> windows -> scores -> top-k labels and anomalies.

analyzer.py        the use case (no transport, no TensorFlow: embed, score and record injected)
types.py           what a caller asks (AnalysisOptions) and gets (AnalysisResult)
windows.py         start_time, cyclic repeat and sliding 10-embedding windows (MAX)
labels.py          the 527 AudioSet labels and top-k
anomaly_groups.py  the groups file (shipped table + operator overrides), validated
anomalies.py       which groups fire in which windows (thresholds, loudness gate)
document.py        one analysis as the JSON document classify and client print
events.py          a listening source's anomaly events: start after N hits in M hops, peak, end
"""
