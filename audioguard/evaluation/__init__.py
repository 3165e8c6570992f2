"""Detection measured on continuous audio (``audioguard evaluate``) and thresholds calibrated to a
false-alarm budget (``audioguard calibrate``).

sounds.py       synthesised backgrounds (room tone, rain-like bed) and foregrounds (T3/T4 alarm
                beeps, siren sweeps, door knocks)
mixtures.py     the evaluation set: foregrounds placed at known times into backgrounds at chosen
                event-to-background ratios, its annotation file and label -> group map
annotations.py  the DCASE-style annotation file (filename, onset, offset, event_label) and the map
drive.py        the live pipeline (monitor service, file sources, as fast as the host allows)
                run over recordings: its events and the scores of every window it scored
replay.py       the same detection step and lifecycle replayed over kept window scores at other
                thresholds (operating points, calibration)
metrics.py      event-based precision/recall/F1 with an onset collar, false alarms per hour,
                onset errors
psds.py         PSDS2 through ``psds_eval`` (the DCASE reference implementation)
report.py       the table, JSON and plot
calibrate.py    thresholds that meet a false-alarm budget, refusing to extrapolate
"""
