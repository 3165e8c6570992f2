"""Continuous listening: live sources captured, supervised, anonymised and analysed.

sources.py          the sources file: named URLs (RTSP, HTTP, files, sound cards, stdin), validated
ffmpeg.py           the ffmpeg command turning one source into float WAV on a pipe (its own rate)
wav_header.py       that stream's header: the rate and channels of the samples that follow
supervisor.py       one supervisor per source: restart with backoff, no-data watchdog, bounded queue
chunks.py           the chunks the captures hand the monitor, in one bounded queue (oldest dropped)
front.py            one source's audio -> exact resampling -> seamless anonymisation -> examples
source_state.py     what the monitor keeps per source (detector, tracker, front, ring, clock)
ring.py             a source's last ten examples and the windows due over them, embedded when scored
loop.py             chunks of all sources -> the shared embedder, due windows -> one predictor call,
                    the analysis' detection step and event lifecycle
service.py          the running monitor: supervisors, the consuming loop, status and metrics

Detection, the event lifecycle and the records are the analysis' (``transformer.analysis``),
shared with uploaded recordings; the monitor builds no record; the streaming
anonymisers are ``transformer.privacy.stream``, the streaming resampler, log-mel and loudness
``transformer.audio.resample_stream`` and ``transformer.audio.stream_features``.
"""
