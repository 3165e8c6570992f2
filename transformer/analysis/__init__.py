"""One recording's (or one live source's) analysis: windows -> scores -> labels, events, records.

analyzer.py        the use case for a recording (no transport, no TensorFlow: embed, score and
                   record injected): a finite source through the detection step and the lifecycle
types.py           what a caller asks (AnalysisOptions) and gets (AnalysisResult)
windows.py         start_time, cyclic repeat and sliding 10-embedding windows (MAX)
labels.py          the 527 AudioSet labels and top-k
anomaly_groups.py  the groups file (shipped table + operator overrides), validated
anomalies.py       the detection step of files and streams: which groups fire in a window
locate.py          where inside a window its sound lies (its 0.12-s loudness profile)
events.py          anomaly events of any source: start after N hits in M hops, peak, end
record_context.py  where a recording or stream came from (what its records say of it)
records.py         the one record schema (SIFIS:Audio_Anomaly) and the SIFIS analysis value
record_schema.py   ``python -m transformer.analysis.record_schema``: the schema as JSON Schema
document.py        one analysis as the JSON document classify and client print
"""
