"""Class-agnostic detectors: anomalies the 527 labels cannot name, judged against a source's own past.

They feed the same detection step, event lifecycle, records and outbox as the label groups
(``transformer.analysis.events``): each gives ``Anomaly`` hits per classifier window, under its
own group name.

sudden_loud.py   onset detector: a rise of X dB within a short rise time over the background,
                 above an absolute floor (group ``sudden_loud``)
novelty.py       a source's model of its normal sounds over its VGGish embeddings (group
                 ``unusual_sound``), learnt, calibrated, frozen; ``NoveltyStore``
voices.py        speech presence (speech_mask's detector) on live sources while their mode is
                 armed (group ``voices_while_armed``)
baseline.py      a source's learned loudness baseline: a running percentile per hour of day,
                 a few numbers, persisted across restarts (``BaselineStore``)
ranges.py        the one range rule of their numeric settings, and its messages
"""

from typing import Final

from transformer.analysis.detectors.novelty import GROUP as UNUSUAL_SOUND
from transformer.analysis.detectors.sudden_loud import GROUP as SUDDEN_LOUD
from transformer.analysis.detectors.voices import GROUP as VOICES_WHILE_ARMED

#: the groups the detectors raise (a mode's group list may name them beside the label groups)
DETECTOR_GROUPS: Final = (SUDDEN_LOUD, VOICES_WHILE_ARMED, UNUSUAL_SOUND)
