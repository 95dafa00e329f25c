"""`python -m finetune --task mood [--config YAML] [flags]` trains; `python -m finetune evaluate MODEL_DIR
--data ...` evaluates any model folder of ours on any data; `python -m finetune framing --task age`
measures how pre-cropped training images frame their faces (spaces.yaml's crop_margin/crop_shift);
`python -m finetune convert SRC --out DIR` turns the face-pretrained TF.js backbone into a model folder."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from .errors import DataError
    try:
        return _run(list(sys.argv[1:] if argv is None else argv))
    except DataError as error:  # bad data: the message says what to change, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2


def _run(argv: list[str]) -> int:
    if argv[:1] == ["evaluate"]:
        from .evaluate import main as evaluate_main
        return evaluate_main(argv[1:])
    if argv[:1] == ["convert"]:
        from .convert import main as convert_main
        return convert_main(argv[1:])
    if argv[:1] == ["framing"]:
        from .framing import main as framing_main
        return framing_main(argv[1:])
    from .config import parse_config
    from .train import main as train_main
    train_main(parse_config(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
