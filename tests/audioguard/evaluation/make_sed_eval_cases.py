"""Write ``sed_eval_cases.json``: random annotated/detected event lists and what ``sed_eval``
0.2.1 (the DCASE reference toolbox: event-based metrics, onset only, optimal matching) counts on
them. Run by hand where sed_eval is installed (it pulls dcase_util, librosa and scikit-learn,
which the project does not need otherwise):

    uv pip install --target /tmp/sedeval sed_eval==0.2.1 dcase_util "setuptools<81"
    PYTHONPATH=/tmp/sedeval python tests/audioguard/evaluation/make_sed_eval_cases.py

``test_metrics`` then checks ``audioguard.evaluation.metrics`` against these counts.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import dcase_util
import sed_eval

LABELS = ("siren", "smoke_fire_alarm")
COLLARS = (0.2, 1.0)


def events(rng: random.Random, count: int) -> list[dict[str, object]]:
    out = []
    for _ in range(count):
        onset = round(rng.uniform(0, 60), 2)
        out.append(
            {
                "filename": rng.choice(("a.wav", "b.wav")),
                "onset": onset,
                "offset": round(onset + rng.uniform(0.5, 8), 2),
                "event_label": rng.choice(LABELS),
            }
        )
    return out


def near(rng: random.Random, reference: list[dict[str, object]]) -> list[dict[str, object]]:
    """Detections: some annotated events shifted by up to 1.5 s, some spurious ones."""
    out = []
    for event in reference:
        if rng.random() < 0.7:
            shift = round(rng.uniform(-1.5, 1.5), 2)
            onset = max(0.0, float(event["onset"]) + shift)  # type: ignore[arg-type]
            out.append({**event, "onset": onset, "offset": onset + 2.0})
    return out + events(rng, rng.randint(0, 4))


def main() -> None:
    rng = random.Random(28)
    cases = []
    for _ in range(40):
        reference = events(rng, rng.randint(1, 12))
        detected = near(rng, reference)
        for collar in COLLARS:
            metric = sed_eval.sound_event.EventBasedMetrics(
                event_label_list=list(LABELS), t_collar=collar, evaluate_onset=True, evaluate_offset=False
            )
            for name in ("a.wav", "b.wav"):
                metric.evaluate(
                    dcase_util.containers.MetaDataContainer([e for e in reference if e["filename"] == name]),
                    dcase_util.containers.MetaDataContainer([e for e in detected if e["filename"] == name]),
                )
            results = metric.results_class_wise_metrics()
            counts = {
                label: {
                    "Nref": int(results[label]["count"]["Nref"]),
                    "Nsys": int(results[label]["count"]["Nsys"]),
                    "f_measure": results[label]["f_measure"]["f_measure"],
                    "recall": results[label]["f_measure"]["recall"],
                }
                for label in LABELS
            }
            cases.append({"collar": collar, "reference": reference, "detected": detected, "sed_eval": counts})
    path = Path(__file__).with_name("sed_eval_cases.json")
    path.write_text(json.dumps(cases) + "\n")
    print(f"{len(cases)} cases: {path}")


if __name__ == "__main__":
    main()
