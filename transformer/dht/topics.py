"""The SIFIS DHT topics this service writes and reads (docs/reference/sifis.md); the settings' defaults.

An operator can rename them (``dht_results_topic`` ... ``listener_topic``); these
are the names the SIFIS Analytics-API and its consumers use.
"""

from typing import Final

#: topic_name of analysis results (what SIFIS consumers read)
RESULTS_TOPIC_NAME: Final = "SIFIS:Privacy_Aware_Audio_Anomaly_Detection_Results"
#: topic_uuid of analysis results: constant, so each result replaces the previous one
RESULTS_TOPIC_UUID: Final = "Audio_Anomaly_Detection_Results"
#: topic_name of anomaly events (one topic_uuid per event)
ANOMALY_TOPIC_NAME: Final = "SIFIS:Audio_Anomaly"
#: topic_name of live sources' mode changes (one topic_uuid per change)
MODE_TOPIC_NAME: Final = "SIFIS:Audio_Mode"
#: topic_name of the analysis requests the listener answers
REQUEST_TOPIC_NAME: Final = "SIFIS:Privacy_Aware_Audio_Anomaly_Detection"
#: the ``Type`` of an analysis request naming an audio file
REQUEST_TYPE: Final = "Audio_file"
#: the ``Type`` of a request setting live sources' mode (``{"mode", "source"}``)
MODE_REQUEST_TYPE: Final = "Audio_mode"
