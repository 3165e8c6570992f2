"""How callers reach the analysis: the Open Inference Protocol (v2) and the SIFIS endpoint.

params.py             scalar parameters validated alike on every path
v2_request.py         v2 request -> audio bytes + analysis options
v2_response.py        analysis result -> v2 response; model metadata
predictor_tensors.py  embeddings -> predictor request; predictor response -> scores
sifis_form.py         the SIFIS multipart form, parsed in memory
sifis_schema.py       SIFIS requests (the form, a DHT request) -> the same options; the answer
sifis.py              the SIFIS routes (/model/predict/..., /model/metadata)
"""
