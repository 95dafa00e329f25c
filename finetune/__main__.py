"""`python -m finetune --task mood [--config YAML] [flags]` trains one model;
`python -m finetune recipe TASK...` runs a task's recipe of stages (finetune/recipes.yaml: the default models);
`python -m finetune evaluate MODEL_DIR --data ...` evaluates any model folder of ours on any data;
`python -m finetune framing --task age` measures how pre-cropped training images frame their faces
(spaces.yaml's crop_margin/crop_shift); `python -m finetune convert SRC --out DIR` turns the face-pretrained
TF.js backbone into a model folder; `--head-only` fits a logistic-regression head on the frozen face backbone
instead (seconds, not hours: the app's "Train your own")."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from .config import ConfigError
    from .errors import DataError
    try:
        return _run(list(sys.argv[1:] if argv is None else argv))
    except (ConfigError, DataError) as error:  # bad data or settings: the message says what to change
        print(f"error: {error}", file=sys.stderr)
        return 2


def _run(argv: list[str]) -> int:
    command, rest = (argv[0] if argv else ""), argv[1:]
    if command == "recipe":
        from .recipe_run import main as recipe_main
        return recipe_main(rest)
    if command == "evaluate":
        from .evaluate import main as evaluate_main
        return evaluate_main(rest)
    if command == "convert":
        from .convert import main as convert_main
        return convert_main(rest)
    if command == "framing":
        from .framing import main as framing_main
        return framing_main(rest)
    from .config import parse_config
    config = parse_config(argv)
    if config.head_only:
        from .head_train import main as head_main
        head_main(config)
        return 0
    from .train import main as train_main
    train_main(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
