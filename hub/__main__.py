"""`python -m hub predict PHOTO|FOLDER ...` and `python -m hub deploy --space-id USER/NAME ...`."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hub", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    from . import cli, deploy
    cli.add_predict_parser(commands)
    deploy.add_deploy_parser(commands)

    args = parser.parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
