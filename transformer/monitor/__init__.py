"""Continuous listening: live sources captured, supervised, anonymised and analysed.

sources.py          the sources file: named URLs (RTSP, HTTP, files, sound cards, stdin), validated;
                    relative file paths from the file's folder
ffmpeg.py           the ffmpeg command turning one source into float WAV on a pipe (its own rate)
ffmpeg_log.py       what ffmpeg says on stderr: its input's duration (a file or a live stream), errors
capture_errors.py   ffmpeg's errors as reasons a person can act on (the table); unreadable files
wav_header.py       that stream's header: the rate and channels of the samples that follow
supervisor.py       one supervisor per source: a finite source finished or failed once, a live one
                    retried with backoff, pacing, no-data watchdog, bounded queue
source_status.py    what the status endpoint and the metrics say of one source
notices.py          what a person is told of the sources (connected, lost, failed, finished ...)
chunks.py           the chunks the captures hand the monitor, in one bounded queue (oldest dropped)
front.py            one source's audio -> exact resampling -> seamless anonymisation -> examples
source_state.py     what the monitor keeps per source (detector, tracker, front, ring, clock)
ring.py             a source's last ten examples and the windows due over them, embedded when scored
loop.py             chunks of all sources -> the shared embedder, due windows -> one predictor call,
                    the analysis' detection step and event lifecycle
mode_keeper.py      each source's mode kept current (schedule, requests), hits filtered by it, changes
                    recorded (``transformer.analysis.modes``)
learnt.py           what the sources learn (loudness baselines, novelty models) saved and reset
service.py          the running monitor: supervisors, the consuming loop, status
reporter.py         the running monitor's notices: finished with what was heard, drops, summary
metrics.py          the sources' figures on /metrics

Detection, the event lifecycle and the records are the analysis' (``transformer.analysis``),
shared with uploaded recordings; the monitor builds no record; the streaming
anonymisers are ``transformer.privacy.stream``, the streaming resampler, log-mel and loudness
``transformer.audio.resample_stream`` and ``transformer.audio.stream_features``.
"""
