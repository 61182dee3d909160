"""``python -m glomsim.sweep SPEC -o OUT.zarr ...`` (the same as ``glomsim sweep``)."""

# the imported module's main, not a __main__ copy: tasks must pickle
# glomsim.sweep.SweepSpec by reference, which workers can import
from glomsim.sweep import main

raise SystemExit(main())
