"""``python -m glomsim.sweep SPEC -o OUT.zarr ...`` (the same as ``glomsim sweep``)."""

# the command lives in glomsim.cli; the spec's classes stay in glomsim.sweep.spec, where
# workers unpickle them from (a class defined in __main__ could not be)
from glomsim.cli.sweep import main

raise SystemExit(main())
