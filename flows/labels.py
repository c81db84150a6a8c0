"""The names that tie a Prefect run to the worker and the process that hold it: flow-run labels set
by a grid's flow run and a pool batch when they start (``flows/cell.py``), and a served cell's task
run name and tag (``flows/served.py``). Plain strings, in a module of their own so that
``python -m flows.lost`` (run by ``start_workers.sh``) reads them without importing MLflow."""

#: Flow-run label a running batch or grid sets to its worker's name, so the parent can check that
#: worker's heartbeat while it waits (a dead worker cannot report its runs as crashed).
WORKER_LABEL = "tlbench.worker"
#: Labels with the host and pid of the process running the flow run: a later run can tell that the
#: process is gone when nobody was left to report it (``flows/lost.py``).
HOST_LABEL, PID_LABEL = "tlbench.host", "tlbench.pid"
#: ``"<cell task name> @ <worker name>"``: a served cell's task run name once a worker holds it.
CLAIM = " @ "
#: Tag of a served cell's task run: its cell's task name (Prefect names a background task run
#: ``train-cell-<n>`` when it is created; the worker renames it ``<cell> @ <worker>`` when it takes it).
CELL_TAG = "tlbench.cell:"
