"""Continuous listening (issue 16, in progress): live sources captured and supervised.

sources.py     the sources file: named URLs (RTSP, HTTP, files, sound cards, stdin), validated
ffmpeg.py      the ffmpeg command turning one source into 16-bit mono PCM on a pipe
supervisor.py  one supervisor per source: restart with backoff, no-data watchdog, bounded queue

The event lifecycle of a listening source is ``transformer.analysis.events``.
"""
