"""``python -m cascade_router``: the same CLI as the ``cascade-router`` command."""

from .cli import main

if __name__ == "__main__":
    main()
