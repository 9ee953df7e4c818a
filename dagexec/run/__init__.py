"""The run layer (DESIGN §18): the executor protocol and the side that executes trials.

:mod:`.protocol` is the contract between the run loop and the executors: the
:class:`~dagexec.run.protocol.Executor` base class, what goes to an executor (a
``Call``, a ``Batch``) and what comes back (an outcome tuple, a ``BatchDone``,
``Remote`` handles); it imports only leaf modules.  :mod:`.worker` is what worker
threads and processes run: one trial, or a batch of them, with type checks, async
tasks and the capture of what a trial logs.  Executors import these two and never
the loop (``dagexec.run.loop``).  Nothing is imported here, so that importing one
module loads only what it needs.
"""
