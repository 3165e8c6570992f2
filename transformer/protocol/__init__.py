"""How callers reach the analysis: the Open Inference Protocol (v2) and the SIFIS endpoint.

params.py             scalar parameters validated alike on every path
v2_request.py         v2 request -> audio bytes + analysis options
rest_body.py          the v2 REST body decoder (KServe 0.21 workaround: binary BYTES stay bytes)
v2_response.py        analysis result -> v2 response; model metadata
predictor_tensors.py  embeddings -> predictor request; predictor response -> scores
bodies.py             bounded in-memory request bodies and the shared 413
sifis_form.py         the SIFIS multipart form -> analysis options
sifis.py              the SIFIS routes (/model/predict/..., /model/metadata)
"""
