"""Continuous listening (issue 16, in progress): live sources captured, supervised and analysed.

sources.py          the sources file: named URLs (RTSP, HTTP, files, sound cards, stdin), validated
ffmpeg.py           the ffmpeg command turning one source into 16-bit mono PCM on a pipe
supervisor.py       one supervisor per source: restart with backoff, no-data watchdog, bounded queue
stream_features.py  a stream's log-mel examples as its audio arrives (equal to the file path's)
loop.py             chunks of all sources -> one VGGish call, due windows -> one predictor call, events
service.py          the running monitor: supervisors, the consuming loop, status and metrics

The event lifecycle of a listening source is ``transformer.analysis.events``.
"""
