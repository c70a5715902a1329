"""``python -m multitask_unet.cli``: the ``multitask-unet`` command (e.g. under ``torchrun -m``)."""

from multitask_unet.cli import main

raise SystemExit(main())
