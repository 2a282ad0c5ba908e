"""`switchover import`: captured traffic with its recorded answers, judged offline.

One module per capture format turns files into `Record`s (and `Problem`s naming file and line);
`service` stores them as pairs whose primary side is the recorded answer, with the candidate
asked through the worker's own path (`shadow.worker.measure.measure_recorded`).
"""
