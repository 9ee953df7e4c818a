"""The plan layer (DESIGN §18): turning a graph into a frozen plan, and what a plan is.

A :class:`~dagexec.CompiledGraph` is built by :mod:`.compile` (with :mod:`.order`
for the topological order and :mod:`.checks` for the checks made on the way), and
holds the specs of :mod:`.specs`.  :mod:`.fingerprint` and :mod:`.codehash` hash a
plan and its code; :mod:`.portable` decides what travels by value when a plan is
saved; :mod:`.templates` fills argument templates; :mod:`.arguments` reads the
arguments of a run that pick nodes and inputs.  Nothing here runs a task: the
modules of this package import only the leaf and definition layers, and each other.

The old module paths (``dagexec._plan``, ``dagexec._compile`` and the rest) remain
as re-exports, because saved plans and user code name them.
"""
